-- Person-level rows for the daily channel trends: one row per user, day and session channel in the
-- last $days days, with visits (sessions), converting visits, purchases and revenue.
-- Feeds privacy releases only (user_id is the privacy unit); never shown as is.
with sessions as (
    select * from sessionized_totals($run_date, $days)
),

final as (
    select
        user_id,
        day,
        channel,
        count(*)::bigint as visits,
        count(*) filter (where purchases > 0)::bigint as converting_visits,
        sum(purchases)::bigint as purchases,
        sum(revenue_cents)::bigint as revenue_cents
    from sessions
    group by user_id, day, channel
)

select * from final
