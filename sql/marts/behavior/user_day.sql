-- Person-level rows for the daily channel trends: one row per user, day and session channel in the
-- last $days days, with visits (sessions), converting visits, purchases and revenue. A session's
-- day and channel are those of its first event (in time, then event id order).
-- Feeds privacy releases only (user_id is the privacy unit); never shown as is.
-- One window pass finds the session starts; each purchase then finds its session with an ASOF
-- join to the starts (the latest start at or before it), which costs far less than a second
-- pass numbering every event's session (a running sum over the whole window).
with ev as (
    -- Ordered by time alone: sorting on the event id as well costs this pass twice as much, and the
    -- session rule needs only the previous timestamp, which ties do not change. Of events sharing
    -- a session's first timestamp, the pass flags one at random; `tied` marks those starts.
    select
        user_id, ts, channel, event_type = 'purchase' as is_purchase, revenue_cents,
        starts_session(ts, lag(ts) over user_time) as starts,
        coalesce(lead(ts) over user_time = ts, false) as tied
    from events_asof($run_date)
    where ts >= $run_date::date - cast($days - 1 as integer)
    window user_time as (partition by user_id order by ts)
),

session_starts as (
    select user_id, ts as session_start, cast(ts as date) as day, channel, tied
    from ev
    where starts
),

tied_channels as (
    -- A session whose first timestamp has several events: its channel is the smallest event id's.
    select e.user_id, e.ts as session_start, arg_min(e.channel, e.event_id) as channel
    from events_asof($run_date) as e
    semi join (select user_id, session_start from session_starts where tied) as t
        on e.user_id = t.user_id and e.ts = t.session_start
    where e.ts >= $run_date::date - cast($days - 1 as integer)
    group by e.user_id, e.ts
),

purchases as (
    -- Two starts of one user never share a timestamp (the second would be no gap), so the
    -- latest start at or before a purchase's time is its session's.
    select p.user_id, s.session_start, count(*) as purchases, coalesce(sum(p.revenue_cents), 0) as revenue_cents
    from ev as p
    asof join session_starts as s on p.user_id = s.user_id and p.ts >= s.session_start
    where p.is_purchase
    group by p.user_id, s.session_start
),

sessions as (
    select s.user_id, s.day, coalesce(t.channel, s.channel) as channel, coalesce(p.purchases, 0) as purchases,
           coalesce(p.revenue_cents, 0) as revenue_cents
    from session_starts as s
    left join tied_channels as t using (user_id, session_start)
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
