-- Ad impressions of the last $days days as click-through training rows, as of $run_date.
-- Label: a click on the same campaign followed in the same session (30-minute gap rule) before the
-- next impression of that campaign. Features come only from the user's events strictly before the
-- impression (ordered by time, then event id): no peeking at the click or anything later.
-- History counts look back over $history_days days. At most $max_rows rows (a hash sample).
--
-- Each window pass sorts and carries every column it is given, so the passes carry only what they
-- need; the sampled rows take their channel and device from the events table at the end.
with history as (
    -- the user's counts before each event and the session starts (sql/macros/sessionized_events.sql)
    select user_id, ts, event_id, event_type, campaign_id, starts, first_seen,
           prior_impressions, prior_clicks, prior_carts, prior_purchases
    from user_event_history($run_date, $history_days)
),

sessions as (
    -- The session pass of sessionized_events over the session starts and the window's ad events
    -- only: a session's number and first impression count need nothing else.
    select
        *,
        sum(starts::int) over user_order as session_no,
        prior_impressions - last_value(case when starts then prior_impressions end ignore nulls) over user_order
            as session_impressions_before
    from history
    where starts
       or (event_type in ('ad_impression', 'ad_click') and campaign_id is not null
           and ts >= $run_date::date - cast($days - 1 as integer))
    window user_order as (partition by user_id order by ts, event_id rows unbounded preceding)
),

ads as (
    -- Only the window's ad events: the event after an impression in the window is in it too.
    select
        *,
        lead(event_type) over (partition by user_id, session_no, campaign_id order by ts, event_id) as next_ad_event
    from sessions
    where event_type in ('ad_impression', 'ad_click') and campaign_id is not null
      and ts >= $run_date::date - cast($days - 1 as integer)
),

sampled as (
    select *
    from ads
    where event_type = 'ad_impression'
    order by hash(event_id)
    limit $max_rows
),

final as (
    select
        s.event_id,
        s.user_id,
        s.ts,
        cast(s.ts as date) as day,
        s.campaign_id,
        e.channel,
        coalesce(e.device, 'unknown') as device,
        hour(s.ts)::int as hour,
        isodow(s.ts)::int as day_of_week,
        s.prior_impressions::bigint as prior_impressions,
        s.prior_clicks::bigint as prior_clicks,
        s.prior_carts::bigint as prior_carts,
        s.prior_purchases::bigint as prior_purchases,
        (s.session_no - 1)::bigint as prior_sessions,
        coalesce(date_diff('day', s.first_seen, s.ts), 0)::bigint as days_since_first_seen,
        s.session_impressions_before::bigint as session_impressions_before,
        coalesce(s.next_ad_event = 'ad_click', false)::int as clicked
    from sampled as s
    inner join events_asof($run_date) as e on e.event_id = s.event_id and e.user_id = s.user_id and e.ts = s.ts
    where e.event_type = 'ad_impression'
      and e.ts >= $run_date::date - cast($days - 1 as integer)
)

select * from final order by ts, event_id
