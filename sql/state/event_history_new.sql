-- The events of the window up to $run_date that the history kept as of $since lacks: those landed
-- or dated since (all of them when $since is null, a rebuild).
create or replace temp table _history_new as
select user_id, ts, event_id, event_type, channel, campaign_id, device, revenue_cents
from events_asof($run_date)
where ts >= $run_date::date - cast($days - 1 as integer)
  and ($since::date is null or not (_partition <= $since::date and ts < $since::date + 1))
