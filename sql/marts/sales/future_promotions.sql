-- Promotions known in advance: rows already landed by $run_date but dated after it, within
-- the forecast horizon. Without such rows, future days are assumed to have no promotion.
with planned as (
    select store_id, product_id, date, bool_or(on_promotion) as on_promotion
    from sales_known($run_date)
    where date > $run_date
        and date <= $run_date::date + $horizon::integer
    group by store_id, product_id, date
),

final as (
    select store_id, product_id, date
    from planned
    where on_promotion
    order by store_id, product_id, date
)

select * from final
