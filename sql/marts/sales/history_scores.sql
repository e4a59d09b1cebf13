-- How good were earlier nights' forecasts, now that (some of) their actuals are known?
-- Forecasts made before $run_date for days up to $run_date are joined with the actuals known
-- as of $run_date (a listed day with no row sold zero) and scored per forecast night: MASE of
-- the model and of the seasonal naive forecast made the same night, sMAPE and coverage.
with forecasts as (
    select *
    from sales_forecast_history
    where run_date < $run_date and date <= $run_date
),

actuals as (
    select store_id, product_id, date, sum(units) as units
    from sales_asof($run_date)
    group by store_id, product_id, date
),

scored as (
    select
        f.*,
        coalesce(a.units, 0)::double as actual
    from forecasts as f
    left join actuals as a using (store_id, product_id, date)
),

per_series as (
    select
        run_date,
        store_id,
        product_id,
        count(*) as days,
        avg(abs(actual - mean)) / nullif(any_value(scale), 0) as mase,
        avg(abs(actual - naive)) / nullif(any_value(scale), 0) as mase_naive,
        avg(case when actual + mean = 0 then 0 else 200 * abs(actual - mean) / (actual + mean) end) as smape,
        avg(case when actual + naive = 0 then 0 else 200 * abs(actual - naive) / (actual + naive) end) as smape_naive,
        avg((actual between lower_80 and upper_80)::integer) as coverage_80,
        avg((actual between lower_95 and upper_95)::integer) as coverage_95
    from scored
    group by run_date, store_id, product_id
),

final as (
    select
        run_date,
        count(*) as series,
        sum(days)::bigint as points,
        avg(mase) as mase,
        avg(mase_naive) as mase_naive,
        avg(smape) as smape,
        avg(smape_naive) as smape_naive,
        sum(coverage_80 * days) / sum(days) as coverage_80,
        sum(coverage_95 * days) / sum(days) as coverage_95
    from per_series
    group by run_date
    order by run_date
)

select * from final
