-- The rows of every store × product series seen as of $run_date, one per date, for forecasting.
-- No gap is filled here: each series' frequency (daily, weekly, monthly, quarterly) is inferred
-- from these dates and the job fills gaps at that frequency (jobs/sales/frequency.py). A series
-- with no row in the last $retire_days days is left out (the job retires sooner, counted in
-- its own periods), and only rows in the last $history_days days are returned.
with known as (
    select date, store_id, product_id, units, on_promotion
    from sales_asof($run_date)
),

dated as (
    -- one row per key is the contract; summing keeps a stray duplicate from doubling a day
    select store_id, product_id, date, sum(units) as units, bool_or(on_promotion) as on_promotion
    from known
    group by store_id, product_id, date
),

recent as (
    select store_id, product_id
    from dated
    group by store_id, product_id
    having max(date) > $run_date::date - $retire_days::integer
),

final as (
    select d.store_id, d.product_id, d.date, d.units::double as units, d.on_promotion
    from dated as d
    inner join recent as r using (store_id, product_id)
    where d.date > $run_date::date - $history_days::integer
    order by d.store_id, d.product_id, d.date
)

select * from final
