-- Staging for energy: typed columns; readings are hourly, so timestamps are truncated to the hour.
with typed as (
    select
        _row,
        date_trunc('hour', try_cast(ts as timestamp)) as ts,
        trim(try_cast(meter_id as varchar)) as meter_id,
        trim(try_cast(region as varchar)) as region,
        try_cast(kwh as double) as kwh,
        try_cast(temperature_c as double) as temperature_c,
        try_cast(is_holiday as boolean) as is_holiday
    from raw
),

final as (select * from typed order by _row)

select * from final
