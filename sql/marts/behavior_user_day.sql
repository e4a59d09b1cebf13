-- Person-level rows for the daily channel trends: one row per user, day and session channel in the
-- last $days days, with visits (sessions), converting visits, purchases and revenue. A session's
-- day and channel are those of its first event.
-- Feeds privacy releases only (user_id is the privacy unit); never shown as is.
-- One window pass finds the session starts; each purchase then finds its session with an ASOF
-- join to the starts (the latest start at or before it), which costs far less than a second
-- pass numbering every event's session (a running sum over the whole window).
with ev as (
    select
        user_id, ts, channel, event_type, revenue_cents,
        starts_session(ts, lag(ts) over (partition by user_id order by ts, event_id)) as starts
    from events
    where _partition <= $run_date
      and ts < $run_date::date + interval 1 day
      and ts >= $run_date::date - cast($days - 1 as integer)
),

session_starts as (
    select user_id, ts as session_start, cast(ts as date) as day, channel
    from ev
    where starts
),

purchases as (
    -- Two starts of one user never share a timestamp (the second would be no gap), so the
    -- latest start at or before a purchase's time is its session's.
    select p.user_id, s.session_start, count(*) as purchases, coalesce(sum(p.revenue_cents), 0) as revenue_cents
    from ev as p
    asof join session_starts as s on p.user_id = s.user_id and p.ts >= s.session_start
    where p.event_type = 'purchase'
    group by p.user_id, s.session_start
),

sessions as (
    select s.user_id, s.day, s.channel, coalesce(p.purchases, 0) as purchases,
           coalesce(p.revenue_cents, 0) as revenue_cents
    from session_starts as s
    left join purchases as p using (user_id, session_start)
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
