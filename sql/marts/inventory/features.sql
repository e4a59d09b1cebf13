-- Daily demand history per warehouse x SKU as of $run_date, with the features the quantile model
-- reads on day t and its target: demand over the next lead time (days t+1 .. t+L), known only when
-- those days are all on or before $run_date (point-in-time: nothing later is visible).
-- Missing days stay null (never counted as zero demand); a target over a gap is null.
with inv as (
    select date, warehouse_id, product_id, on_hand, received, ordered, lead_time_days,
           unit_cost_cents, holding_cost_rate, order_cost_cents
    from inventory_asof($run_date)
    -- a restated day (landed again later) counts in its newest version
    qualify row_number() over (partition by date, warehouse_id, product_id order by _partition desc) = 1
),

bounds as (
    select warehouse_id, product_id, min(date) as first_date
    from inv
    group by all
),

spine as (
    select warehouse_id, product_id,
           unnest(generate_series(first_date::timestamp, $run_date::timestamp, interval 1 day))::date as date
    from bounds
),

promo as (
    -- share of stores with the product on promotion that day; products unknown to sales get nulls
    select product_id, date, avg(on_promotion::int)::double as promo_share
    from sales_asof($run_date)
    group by all
),

sales_products as (
    select distinct product_id from promo
),

daily as (
    select s.warehouse_id, s.product_id, s.date,
           i.ordered::double as demand,
           i.on_hand, i.received,
           last_value(i.lead_time_days ignore nulls) over w_past as lead_time_days,
           last_value(i.unit_cost_cents ignore nulls) over w_past as unit_cost_cents,
           last_value(i.holding_cost_rate ignore nulls) over w_past as holding_cost_rate,
           last_value(i.order_cost_cents ignore nulls) over w_past as order_cost_cents,
           coalesce(p.promo_share, 0.0) as promo_share,
           sp.product_id is not null as has_sales
    from spine s
    left join inv i using (warehouse_id, product_id, date)
    left join promo p using (product_id, date)
    left join sales_products sp using (product_id)
    window w_past as (partition by s.warehouse_id, s.product_id order by s.date
                      rows between unbounded preceding and current row)
),

windows as (
    select *,
           avg(demand) over (partition by warehouse_id, product_id order by date rows between 6 preceding and current row) as m7,
           avg(demand) over (partition by warehouse_id, product_id order by date rows between 27 preceding and current row) as m28,
           avg(demand) over (partition by warehouse_id, product_id order by date rows between 90 preceding and current row) as m91,
           avg(demand) over (partition by warehouse_id, product_id order by date rows between 364 preceding and current row) as m365,
           stddev_samp(demand) over (partition by warehouse_id, product_id order by date rows between 27 preceding and current row) as sd28,
           max(demand) over (partition by warehouse_id, product_id order by date rows between 27 preceding and current row) as max28,
           median(demand) over (partition by warehouse_id, product_id order by date rows between 27 preceding and current row) as med28,
           avg((demand = 0)::int) over (partition by warehouse_id, product_id order by date rows between 27 preceding and current row) as zero28,
           avg(promo_share) over (partition by warehouse_id, product_id order by date rows between 6 preceding and current row) as promo7,
           count(demand) over (partition by warehouse_id, product_id order by date rows between unbounded preceding and current row) as days_known,
           sum(coalesce(demand, 0)) over (partition by warehouse_id, product_id order by date rows between unbounded preceding and current row) as cum_demand,
           count(demand) over (partition by warehouse_id, product_id order by date rows between unbounded preceding and current row) as cum_known
    from daily
),

final as (
    select w.warehouse_id, w.product_id, w.date,
           w.demand, w.on_hand, w.received, w.lead_time_days, w.unit_cost_cents, w.holding_cost_rate,
           w.order_cost_cents, w.promo_share, w.promo7, w.has_sales,
           w.m7, w.m28, w.m91, w.m365, w.sd28, w.max28, w.med28, w.zero28, w.days_known,
           isodow(w.date) as dow,
           dayofyear(w.date) as doy,
           -- demand of the last lead time (the baseline's sample) and of the same window a year ago
           case when back.cum_known is not null and w.cum_known - back.cum_known = w.lead_time_days
                then w.cum_demand - back.cum_demand end as past_lt_demand,
           case when ly1.cum_known is not null and ly0.cum_known is not null
                     and ly1.cum_known - ly0.cum_known = w.lead_time_days
                then ly1.cum_demand - ly0.cum_demand end as last_year_lt_demand,
           case when ahead.cum_known is not null and ahead.cum_known - w.cum_known = w.lead_time_days
                then ahead.cum_demand - w.cum_demand end as target
    from windows w
    left join windows ahead
        on ahead.warehouse_id = w.warehouse_id and ahead.product_id = w.product_id
       and ahead.date = w.date + w.lead_time_days::int
    left join windows back
        on back.warehouse_id = w.warehouse_id and back.product_id = w.product_id
       and back.date = w.date - w.lead_time_days::int
    left join windows ly0
        on ly0.warehouse_id = w.warehouse_id and ly0.product_id = w.product_id
       and ly0.date = w.date - 365
    left join windows ly1
        on ly1.warehouse_id = w.warehouse_id and ly1.product_id = w.product_id
       and ly1.date = w.date - 365 + w.lead_time_days::int
)

select * from final
order by warehouse_id, product_id, date
