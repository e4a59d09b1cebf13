-- Person-level rows for channel totals and funnels: one row per user and session channel over the
-- last $days days. Funnel steps are flags (did the user reach the step in that channel at all):
-- visit -> ad_click -> add_to_cart -> purchase. Feeds privacy releases only.
with numbered as (
    select * from sessionized_events($run_date, $days)
),

sessions as (
    select
        user_id,
        session_no,
        arg_min(channel, ts) as channel,
        count(*) filter (where event_type = 'ad_click') as clicks,
        count(*) filter (where event_type = 'add_to_cart') as carts,
        count(*) filter (where event_type = 'purchase') as purchases,
        coalesce(sum(revenue_cents) filter (where event_type = 'purchase'), 0) as revenue_cents
    from numbered
    group by user_id, session_no
),

final as (
    select
        user_id,
        channel,
        count(*)::bigint as visits,
        count(*) filter (where purchases > 0)::bigint as converting_visits,
        sum(purchases)::bigint as purchases,
        sum(revenue_cents)::bigint as revenue_cents,
        1::bigint as visited,
        (max(clicks) > 0)::bigint as clicked,
        (max(carts) > 0)::bigint as carted,
        (max(purchases) > 0)::bigint as purchased
    from sessions
    group by user_id, channel
)

select * from final
