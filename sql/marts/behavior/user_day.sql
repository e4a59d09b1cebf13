-- Person-level rows for the daily channel trends: one row per user, day and session channel in the
-- last $days days, with visits (sessions), converting visits, purchases and revenue. A session's
-- day and channel are those of its first event (in time, then event id order); a session that
-- began before the window counts from its first event in the window.
-- Feeds privacy releases only (user_id is the privacy unit); never shown as is.
--
-- It reads the event history kept between nights (sql/state/event_history_create.sql), which
-- jobs/behavior/event_history.py brings to $run_date over at least $days days before this runs:
-- its sessions are numbered and their first events flagged, so no pass here sorts the events.
with heads as (
    -- Each session's first event in the window: its start, or where the window cuts a session that
    -- began before the window.
    select user_id, session_no, ts, channel
    from behavior_event_history
    where ts >= $run_date::date - cast($days - 1 as integer) and starts
    union all
    select user_id, session_no, min(ts) as ts, arg_min(channel, (ts, event_id)) as channel
    from behavior_event_history
    where ts >= $run_date::date - cast($days - 1 as integer)
      and session_start < $run_date::date - cast($days - 1 as integer)
    group by user_id, session_no
),

purchases as (
    select user_id, session_no, count(*) as purchases, coalesce(sum(revenue_cents), 0) as revenue_cents
    from behavior_event_history
    where ts >= $run_date::date - cast($days - 1 as integer) and event_type = 'purchase'
    group by user_id, session_no
),

final as (
    select
        h.user_id,
        cast(h.ts as date) as day,
        h.channel,
        count(*)::bigint as visits,
        count(*) filter (where p.purchases > 0)::bigint as converting_visits,
        coalesce(sum(p.purchases), 0)::bigint as purchases,
        coalesce(sum(p.revenue_cents), 0)::bigint as revenue_cents
    from heads as h
    left join purchases as p using (user_id, session_no)
    group by h.user_id, day, h.channel
)

select * from final
