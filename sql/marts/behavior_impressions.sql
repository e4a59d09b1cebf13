-- Ad impressions of the last $days days as click-through training rows, as of $run_date.
-- Label: a click on the same campaign followed in the same session (30-minute gap rule) before the
-- next impression of that campaign. Features come only from the user's events strictly before the
-- impression (ordered by time, then event id): no peeking at the click or anything later.
-- History counts look back over $history_days days. At most $max_rows rows (a hash sample).
with history as (
    -- sessions and the user's counts before each event (sql/macros/sessionized_events.sql)
    select * from sessionized_events($run_date, $history_days)
),

ads as (
    -- Only the window's ad events: the event after an impression in the window is in it too.
    select
        *,
        lead(event_type) over (partition by user_id, session_no, campaign_id order by ts, event_id) as next_ad_event
    from history
    where event_type in ('ad_impression', 'ad_click') and campaign_id is not null
      and ts >= $run_date::date - cast($days - 1 as integer)
),

final as (
    select
        event_id,
        user_id,
        ts,
        cast(ts as date) as day,
        campaign_id,
        channel,
        device,
        hour(ts)::int as hour,
        isodow(ts)::int as day_of_week,
        prior_impressions::bigint as prior_impressions,
        prior_clicks::bigint as prior_clicks,
        prior_carts::bigint as prior_carts,
        prior_purchases::bigint as prior_purchases,
        (session_no - 1)::bigint as prior_sessions,
        coalesce(date_diff('day', first_seen, ts), 0)::bigint as days_since_first_seen,
        session_impressions_before::bigint as session_impressions_before,
        coalesce(next_ad_event = 'ad_click', false)::int as clicked
    from ads
    where event_type = 'ad_impression'
      and ts >= $run_date::date - cast($days - 1 as integer)
    order by hash(event_id)
    limit $max_rows
)

select * from final order by ts, event_id
