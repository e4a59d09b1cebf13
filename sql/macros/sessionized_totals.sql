-- One row per session in the last `days` days up to run_date, with what happened in it; its
-- channel and device are those of its first event. A visit is a session.
create or replace macro sessionized_totals(run_date, days) as table
with final as (
    select
        user_id,
        session_no,
        min(ts) as session_start,
        cast(min(ts) as date) as day,
        arg_min(channel, ts) as channel,
        arg_min(device, ts) as device,
        count(*) filter (where event_type = 'ad_impression') as impressions,
        count(*) filter (where event_type = 'ad_click') as clicks,
        count(*) filter (where event_type = 'add_to_cart') as carts,
        count(*) filter (where event_type = 'purchase') as purchases,
        coalesce(sum(revenue_cents) filter (where event_type = 'purchase'), 0)::bigint as revenue_cents
    from sessionized_events(run_date, days)
    group by user_id, session_no
)

select * from final
