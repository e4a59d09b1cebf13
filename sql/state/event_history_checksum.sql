-- How many events the kept history of $days days is made from, and a checksum of them: as of
-- $run_date, and as of $since (an earlier date the history was kept for; null: none), in one scan.
with events as (
    select
        hash(event_id, user_id, ts, event_type, channel, campaign_id, device, revenue_cents) as h,
        ts >= $run_date::date - cast($days - 1 as integer) and ts < $run_date::date + 1 as now,
        coalesce(_partition <= $since::date and ts >= $since::date - cast($days - 1 as integer)
                 and ts < $since::date + 1, false) as since
    from events_known($run_date)
    where ts >= least($run_date::date, coalesce($since::date, $run_date::date)) - cast($days - 1 as integer)
)

select
    count(*) filter (where now) as events,
    coalesce(sum(h) filter (where now), 0)::hugeint as checksum,
    count(*) filter (where since) as events_since,
    coalesce(sum(h) filter (where since), 0)::hugeint as checksum_since
from events
