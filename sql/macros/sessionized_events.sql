-- The events known by run_date in the last `days` days, each with its session and the user's
-- history before it: a session is one user's run of events with no gap over 30 minutes (`starts`
-- marks its first event; the rule is sql/macros/session_rule.sql).
--
-- user_event_history is the one pass over every event (ordered by user, time, event id: each
-- window ordering is a sort of the whole window). prior_* count the user's events strictly before
-- this one (in the window); first_seen is the user's first event in the window.
create or replace macro user_event_history(run_date, days) as table
with ev as (
    select
        user_id, ts, event_id, event_type, channel, campaign_id, coalesce(device, 'unknown') as device,
        product_id, revenue_cents
    from events_asof(run_date)
    where ts >= run_date::date - cast(days - 1 as integer)
),

counts as (
    -- One running sum carries four counts (impressions, clicks, carts, purchases) in 30-bit fields
    -- of a HUGEINT, packed and read back with shifts and masks (HUGEINT division is slow): each
    -- windowed aggregate is a segment tree over the whole window, so one instead of four is most
    -- of this pass's cost. A user would need 2^30 events of one kind to overflow a field.
    select
        *,
        starts_session(ts, lag(ts) over user_order) as starts,
        sum((event_type = 'ad_impression')::hugeint
            | ((event_type = 'ad_click')::hugeint << 30)
            | ((event_type = 'add_to_cart')::hugeint << 60)
            | ((event_type = 'purchase')::hugeint << 90)) over user_order as packed,
        first_value(ts) over user_order as first_seen
    from ev
    window user_order as (partition by user_id order by ts, event_id rows unbounded preceding)
),

final as (
    select
        user_id, ts, event_id, event_type, channel, campaign_id, device, product_id, revenue_cents, starts,
        (packed & 1073741823)::bigint - (event_type = 'ad_impression')::int as prior_impressions,
        ((packed >> 30) & 1073741823)::bigint - (event_type = 'ad_click')::int as prior_clicks,
        ((packed >> 60) & 1073741823)::bigint - (event_type = 'add_to_cart')::int as prior_carts,
        (packed >> 90)::bigint - (event_type = 'purchase')::int as prior_purchases,
        first_seen
    from counts
)

select * from final;

-- Every event of user_event_history with its session: session_no numbers the user's sessions in
-- the window (a running count of starts), session_impressions_before counts the impressions
-- earlier in the same session (the running count minus its value at the session's first event).
-- Both need only the starts before an event: a caller that wants a few events (the impressions
-- mart) runs this second pass over the starts and those events alone.
create or replace macro sessionized_events(run_date, days) as table
with final as (
    select
        *,
        sum(starts::int) over user_order as session_no,
        prior_impressions - last_value(case when starts then prior_impressions end ignore nulls) over user_order
            as session_impressions_before
    from user_event_history(run_date, days)
    window user_order as (partition by user_id order by ts, event_id rows unbounded preceding)
)

select * from final;
