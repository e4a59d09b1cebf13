-- Person-level rows for campaign reach: one row per user and campaign over the last $days days
-- with the user's impressions and clicks. Feeds privacy releases only.
with final as (
    select
        user_id,
        campaign_id,
        count(*) filter (where event_type = 'ad_impression')::bigint as impressions,
        count(*) filter (where event_type = 'ad_click')::bigint as clicks
    from events_asof($run_date)
    where ts >= $run_date::date - cast($days - 1 as integer)
      and event_type in ('ad_impression', 'ad_click')
      and campaign_id is not null
    group by user_id, campaign_id
)

select * from final
