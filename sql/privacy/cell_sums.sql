-- True (not yet noisy) sums per cell of each clipped value column (m = 1-based value index).
with long as (
    select cell, unnest(range(1, len(vals) + 1)) as m, unnest(vals) as v
    from _privacy_bounded
),

final as (
    select m, cell, sum(v)::bigint as total
    from long
    group by m, cell
)

select * from final
