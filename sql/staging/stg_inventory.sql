-- Staging for inventory: typed columns.
with typed as (
    select
        _row,
        try_cast(date as date) as date,
        trim(try_cast(warehouse_id as varchar)) as warehouse_id,
        trim(try_cast(product_id as varchar)) as product_id,
        try_cast(on_hand as bigint) as on_hand,
        try_cast(received as bigint) as received,
        try_cast(ordered as bigint) as ordered,
        try_cast(lead_time_days as integer) as lead_time_days,
        try_cast(unit_cost_cents as bigint) as unit_cost_cents,
        try_cast(holding_cost_rate as double) as holding_cost_rate,
        try_cast(order_cost_cents as bigint) as order_cost_cents
    from raw
),

final as (select * from typed order by _row)

select * from final
