-- One row per session in the last $days days up to $run_date, with what happened in it.
-- A session is one user's run of events with no gap over 30 minutes; its channel and device are
-- those of its first event. Used for visits, conversion and funnels (a visit = a session).
with ev as (
    select user_id, ts, event_id, event_type, channel, coalesce(device, 'unknown') as device, revenue_cents
    from events
    where _partition <= $run_date
      and ts < $run_date::date + interval 1 day
      and ts >= $run_date::date - cast($days - 1 as integer)
),

gaps as (
    select
        *,
        coalesce(ts - lag(ts) over (partition by user_id order by ts, event_id) > interval 30 minute, true) as starts
    from ev
),

numbered as (
    select *, sum(starts::int) over (partition by user_id order by ts, event_id rows unbounded preceding) as session_no
    from gaps
),

final as (
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
    from numbered
    group by user_id, session_no
)

select * from final
