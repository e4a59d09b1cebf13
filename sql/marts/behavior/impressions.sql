-- Ad impressions of the last $days days as click-through training rows, as of $run_date.
-- Label: a click on the same campaign followed in the same session (30-minute gap rule) before the
-- next impression of that campaign. Features come only from the user's events strictly before the
-- impression (ordered by time, then event id): no peeking at the click or anything later.
-- History counts look back over $history_days days. At most $max_rows rows (a hash sample).
--
-- It reads the event history kept between nights (sql/state/event_history_create.sql), which
-- jobs/behavior/event_history.py brings to $run_date over $history_days days before this runs.
-- Its counts and session numbers run from the user's first kept event; within the window they are
-- differences from the user's first event in it, where the window's history of the user starts.
-- The kept table is read twice, not through a shared CTE, which DuckDB would copy whole.
with sampled as (
    select *
    from behavior_event_history
    where event_type = 'ad_impression' and campaign_id is not null
      and ts >= $run_date::date - cast($days - 1 as integer)
    order by hash(event_id)
    limit $max_rows
),

first_events as (
    -- Each user's first event in the window: its counts and session are where the window starts
    -- (for every user: a hash aggregate costs less than picking the sampled users first).
    select
        user_id,
        min(ts) as first_seen,
        min(impressions_before) as impressions,
        min(clicks_before) as clicks,
        min(carts_before) as carts,
        min(purchases_before) as purchases,
        min(session_no) as session_no
    from behavior_event_history
    where ts >= $run_date::date - cast($history_days - 1 as integer)
    group by user_id
),

final as (
    select
        s.event_id,
        s.user_id,
        s.ts,
        cast(s.ts as date) as day,
        s.campaign_id,
        s.channel,
        coalesce(s.device, 'unknown') as device,
        hour(s.ts)::int as hour,
        isodow(s.ts)::int as day_of_week,
        s.impressions_before - f.impressions as prior_impressions,
        s.clicks_before - f.clicks as prior_clicks,
        s.carts_before - f.carts as prior_carts,
        s.purchases_before - f.purchases as prior_purchases,
        s.session_no - f.session_no as prior_sessions,
        date_diff('day', f.first_seen, s.ts)::bigint as days_since_first_seen,
        -- a session that began before the window is counted from the window's first event
        s.impressions_before - greatest(s.session_impressions, f.impressions) as session_impressions_before,
        coalesce(s.next_ad_event = 'ad_click', false)::int as clicked
    from sampled as s
    inner join first_events as f using (user_id)
)

select * from final order by ts, event_id
