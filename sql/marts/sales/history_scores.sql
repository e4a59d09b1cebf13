-- How good were earlier nights' forecasts, now that (some of) their actuals are known?
-- Forecasts made before $run_date for periods up to $run_date are joined with the actuals known
-- as of $run_date and scored per forecast night: MASE of the model and of the seasonal naive
-- forecast made the same night, sMAPE and coverage. A day of a daily series with no row sold
-- nothing (sales exports leave zero days out); a week, month or quarter with no row is not known
-- yet (or ever), so it is not scored.
with forecasts as (
    select
        *,
        -- a month or a quarter is matched as a period, whatever day of it the export is dated
        case freq when 'monthly' then 'month' when 'quarterly' then 'quarter' else 'day' end as part
    from sales_forecast_history
    where run_date < $run_date and date <= $run_date
),

kinds as (
    select distinct store_id, product_id, freq, part
    from forecasts
),

actuals as (
    select s.store_id, s.product_id, k.freq, date_trunc(k.part, s.date) as period, sum(s.units) as units
    from sales_asof($run_date) as s
    inner join kinds as k using (store_id, product_id)
    group by all
),

scored as (
    select
        f.*,
        coalesce(a.units, case when f.freq = 'daily' then 0 end)::double as actual
    from forecasts as f
    left join actuals as a
        on f.store_id = a.store_id and f.product_id = a.product_id and f.freq = a.freq
        and date_trunc(f.part, f.date) = a.period
),

per_series as (
    select
        run_date,
        store_id,
        product_id,
        count(*) as points,
        avg(abs(actual - mean)) / nullif(any_value(scale), 0) as mase,
        avg(abs(actual - naive)) / nullif(any_value(scale), 0) as mase_naive,
        avg(case when actual + mean = 0 then 0 else 200 * abs(actual - mean) / (actual + mean) end) as smape,
        avg(case when actual + naive = 0 then 0 else 200 * abs(actual - naive) / (actual + naive) end) as smape_naive,
        avg((actual between lower_80 and upper_80)::integer) as coverage_80,
        avg((actual between lower_95 and upper_95)::integer) as coverage_95
    from scored
    where actual is not null
    group by run_date, store_id, product_id
),

final as (
    select
        run_date,
        count(*) as series,
        sum(points)::bigint as points,
        avg(mase) as mase,
        avg(mase_naive) as mase_naive,
        avg(smape) as smape,
        avg(smape_naive) as smape_naive,
        sum(coverage_80 * points) / sum(points) as coverage_80,
        sum(coverage_95 * points) / sum(points) as coverage_95
    from per_series
    group by run_date
    order by run_date
)

select * from final
