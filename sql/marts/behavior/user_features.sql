-- Per-user behaviour features for segmentation, over the last $days days: recency, frequency
-- (sessions), monetary value, purchases and the share of sessions per channel.
with gaps as (
    select * from sessionized_events($run_date, $days)
),

sessions as (
    select user_id, channel
    from gaps
    where starts
),

spend as (
    select
        user_id,
        $run_date::date - max(cast(ts as date)) as recency_days,
        count(*) filter (where event_type = 'purchase') as purchases,
        coalesce(sum(revenue_cents) filter (where event_type = 'purchase'), 0) as revenue_cents
    from gaps
    group by user_id
),

mix as (
    select
        user_id,
        count(*) as sessions,
        avg((channel = 'organic')::int) as share_organic,
        avg((channel = 'search')::int) as share_search,
        avg((channel = 'social')::int) as share_social,
        avg((channel = 'email')::int) as share_email,
        avg((channel = 'partner')::int) as share_partner,
        avg((channel = 'referral')::int) as share_referral
    from sessions
    group by user_id
),

final as (
    select
        s.user_id,
        s.recency_days::bigint as recency_days,
        m.sessions::bigint as sessions,
        s.purchases::bigint as purchases,
        s.revenue_cents::bigint as revenue_cents,
        m.share_organic,
        m.share_search,
        m.share_social,
        m.share_email,
        m.share_partner,
        m.share_referral
    from spend as s
    inner join mix as m on m.user_id = s.user_id
)

select * from final
