-- True (not yet noisy) counts per cell of the bounded rows and of the bounded distinct units.
with row_counts as (
    select cell, count(*) as n
    from _privacy_bounded
    group by cell
),

unit_counts as (
    select cell, count(*) as n
    from _privacy_bounded_units
    group by cell
),

final as (
    select 'rows' as what, cell, n from row_counts
    union all
    select 'units' as what, cell, n from unit_counts
)

select * from final
