-- Person-level rows for channel totals and funnels: one row per user and session channel over the
-- last $days days. Funnel steps are flags (did the user reach the step in that channel at all):
-- visit -> ad_click -> add_to_cart -> purchase. Feeds privacy releases only.
with sessions as (
    select * from sessionized_totals($run_date, $days)
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
