-- Staging for sales: typed columns.
with typed as (
    select
        _row,
        try_cast(date as date) as date,
        trim(try_cast(store_id as varchar)) as store_id,
        trim(try_cast(product_id as varchar)) as product_id,
        try_cast(units as bigint) as units,
        try_cast(unit_price_cents as bigint) as unit_price_cents,
        try_cast(on_promotion as boolean) as on_promotion
    from raw
),

final as (select * from typed order by _row)

select * from final
