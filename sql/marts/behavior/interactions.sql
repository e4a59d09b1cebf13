-- User x product interactions for recommendations over the last $days days: one row per user,
-- product and day with carts and purchases.
with final as (
    select
        user_id,
        product_id,
        cast(ts as date) as day,
        count(*) filter (where event_type = 'add_to_cart')::bigint as carts,
        count(*) filter (where event_type = 'purchase')::bigint as purchases
    from events_asof($run_date)
    where ts >= $run_date::date - cast($days - 1 as integer)
      and event_type in ('add_to_cart', 'purchase')
      and product_id is not null
    group by user_id, product_id, cast(ts as date)
)

select * from final
