-- Contribution bounding for distinct counts: one row per (unit, cell) first, then at most $k cells
-- per unit chosen by a salted hash (not the first cells by time or name). Input: _privacy_input.
create or replace temp table _privacy_bounded_units as
with pairs as (
    select distinct unit, cell
    from _privacy_input
),

ranked as (
    select
        unit,
        cell,
        row_number() over (partition by unit order by hash(unit, cell, $salt), cell) as rn
    from pairs
),

final as (
    select unit, cell
    from ranked
    where rn <= $k
)

select * from final
