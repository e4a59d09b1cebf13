-- Daily units of every active store × product series as of $run_date, for forecasting.
-- A product counts as listed from its first row on; a missing day while listed is a zero-sales
-- day. A series with no row in the last $retire_days days is retired and left out. Only the
-- last $history_days days are returned: older history costs fit time and says little about
-- next month.
with known as (
    select date, store_id, product_id, units, on_promotion
    from sales_asof($run_date)
),

daily as (
    -- one row per key is the contract; summing keeps a stray duplicate from doubling a day
    select store_id, product_id, date, sum(units) as units, bool_or(on_promotion) as on_promotion
    from known
    group by store_id, product_id, date
),

spans as (
    select store_id, product_id, min(date) as first_date, max(date) as last_date
    from daily
    group by store_id, product_id
),

active as (
    select
        store_id,
        product_id,
        greatest(first_date, $run_date::date - ($history_days::integer - 1)) as window_start
    from spans
    where last_date > $run_date::date - $retire_days::integer
),

grid as (
    select store_id, product_id, unnest(range(window_start, $run_date::date + 1, interval 1 day))::date as date
    from active
),

final as (
    select
        g.store_id,
        g.product_id,
        g.date,
        coalesce(d.units, 0)::double as units,
        coalesce(d.on_promotion, false) as on_promotion,
        d.units is null as filled
    from grid as g
    left join daily as d using (store_id, product_id, date)
    order by g.store_id, g.product_id, g.date
)

select * from final
