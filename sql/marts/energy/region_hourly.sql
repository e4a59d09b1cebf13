-- Region-level hourly load as of $run_date: one row per region and hour on a complete hourly grid
-- (from the first reading to the end of the run date), so hours with no readings show up as
-- rows with meters_reporting = 0 instead of silently vanishing. meters_active counts the meters
-- that had joined (first reading) and not yet left (last reading) at that hour, which lets the
-- job tell a missing reading from a meter that left.
with readings as (
    select ts, meter_id, region, kwh, temperature_c, is_holiday
    from energy_asof($run_date)
),

-- one reading per meter and hour even if a drop was delivered twice
dedup as (
    select
        ts,
        meter_id,
        any_value(region) as region,
        avg(kwh) as kwh,
        avg(temperature_c) as temperature_c,
        bool_or(is_holiday) as is_holiday
    from readings
    group by ts, meter_id
),

meters as (
    select meter_id, any_value(region) as region, min(ts) as first_ts, max(ts) as last_ts
    from dedup
    group by meter_id
),

hours as (
    select unnest(generate_series(
        (select min(ts) from dedup),
        $run_date::date + interval 23 hour,
        interval 1 hour
    )) as hour
),

regions as (select distinct region from meters),

grid as (select r.region, h.hour from regions as r cross join hours as h),

-- +1 when a meter joins, -1 the hour after it leaves; a running sum gives the active count
changes as (
    select region, first_ts as hour, 1 as delta from meters
    union all
    select region, last_ts + interval 1 hour as hour, -1 as delta from meters
),

change_per_hour as (
    select region, hour, sum(delta) as delta from changes group by region, hour
),

active as (
    select
        g.region,
        g.hour,
        sum(coalesce(c.delta, 0)) over (partition by g.region order by g.hour) as meters_active
    from grid as g
    left join change_per_hour as c on c.region = g.region and c.hour = g.hour
),

observed as (
    select
        region,
        ts as hour,
        sum(kwh) as kwh,
        count(*) as meters_reporting,
        avg(temperature_c) as temperature_c,
        bool_or(is_holiday) as is_holiday
    from dedup
    group by region, ts
),

-- the holiday flag is a property of the date: known even for a region with no readings that day
holiday_days as (
    select ts::date as day, bool_or(is_holiday) as is_holiday from dedup group by 1
),

final as (
    select
        a.region,
        a.hour,
        o.kwh,
        coalesce(o.meters_reporting, 0)::integer as meters_reporting,
        a.meters_active::integer as meters_active,
        o.temperature_c,
        coalesce(o.is_holiday, d.is_holiday, false) as is_holiday
    from active as a
    left join observed as o on o.region = a.region and o.hour = a.hour
    left join holiday_days as d on d.day = a.hour::date
    order by a.region, a.hour
)

select * from final
