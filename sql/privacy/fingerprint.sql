-- An order-free fingerprint of the bounded input (the rows that feed the aggregates): equal
-- fingerprints mean the same bounded input, so a stored release can be served again for free.
with row_part as (
    select count(*) as n, coalesce(sum(hash(unit, cell, vals)::hugeint), 0) as h
    from _privacy_bounded
),

unit_part as (
    select count(*) as n, coalesce(sum(hash(unit, cell)::hugeint), 0) as h
    from _privacy_bounded_units
),

final as (
    select
        r.n::varchar || ':' || r.h::varchar || ':' || u.n::varchar || ':' || u.h::varchar as fingerprint
    from row_part as r, unit_part as u
)

select * from final
