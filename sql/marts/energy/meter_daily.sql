-- Person-level input for the privacy layer (never published as is): one row per meter and day
-- with the day's consumption, for the last $days days up to $run_date. The privacy layer bounds
-- rows per meter and clips kWh before any aggregate leaves.
with readings as (
    select ts, meter_id, region, kwh
    from energy_asof($run_date)
    where ts >= $run_date::date - ($days - 1) * interval 1 day
),

final as (
    select
        meter_id,
        any_value(region) as region,
        ts::date as day,
        sum(kwh) as kwh,
        count(*)::integer as hours
    from readings
    group by meter_id, ts::date
    order by day, meter_id
)

select * from final
