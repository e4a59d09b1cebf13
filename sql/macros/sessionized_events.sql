-- The events known by run_date in the last `days` days, each with its session: a session is one
-- user's run of events with no gap over 30 minutes (`starts` marks its first event). Shared by the
-- behavior marts so the session rule is written once.
create or replace macro sessionized_events(run_date, days) as table
with ev as (
    select
        user_id, ts, event_id, event_type, channel, campaign_id, coalesce(device, 'unknown') as device,
        product_id, revenue_cents
    from events
    where _partition <= run_date
      and ts < run_date::date + interval 1 day
      and ts >= run_date::date - cast(days - 1 as integer)
),

gaps as (
    select
        *,
        coalesce(ts - lag(ts) over (partition by user_id order by ts, event_id) > interval 30 minute, true) as starts
    from ev
),

final as (
    select *, sum(starts::int) over (partition by user_id order by ts, event_id rows unbounded preceding) as session_no
    from gaps
)

select * from final
