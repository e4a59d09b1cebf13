-- Contribution bounding for counts of rows and sums: at most $k rows per unit, chosen by a hash of
-- the row salted with the release (a pseudo-random sample that favours no time of day), then every
-- value clipped to its declared integer bounds ($lower[i], $upper[i]). Input: _privacy_input.
create or replace temp table _privacy_bounded as
with input as (
    select unit, cell, vals
    from _privacy_input
),

ranked as (
    select
        unit,
        cell,
        vals,
        row_number() over (
            partition by unit order by hash(unit, cell, vals, $salt), cell, vals
        ) as rn
    from input
),

kept as (
    select unit, cell, vals
    from ranked
    where rn <= $k
),

final as (
    select
        unit,
        cell,
        list_transform(vals, lambda v, i: least(greatest(v, $lower[i]), $upper[i])) as vals
    from kept
)

select * from final
