-- Bring the kept history forward with the new events in `_history_new` (sql/state/event_history_new.sql).
--
-- A user's new events usually all come after the user's last kept event: they continue its totals
-- and its session from there (behavior_event_history_users). A user with a new event before the
-- last kept one (a late drop) is recomputed from all of the user's events instead: the user's kept
-- rows go back into `_history_new` and the user starts from nothing, like a new one.
create or replace temp table _history_late as
select n.user_id
from (select user_id, min((ts, event_id)) as first_new from _history_new group by user_id) as n
inner join behavior_event_history_users as u on n.user_id = u.user_id
where n.first_new <= (u.ts, u.event_id);

insert into _history_new
select user_id, ts, event_id, event_type, channel, campaign_id, device, revenue_cents
from behavior_event_history
where user_id in (select user_id from _history_late);

delete from behavior_event_history where user_id in (select user_id from _history_late);

delete from behavior_event_history_users where user_id in (select user_id from _history_late);

-- The totals and sessions of the new events. One window pass carries the four counts in 30-bit
-- fields of one HUGEINT running sum (each windowed aggregate is a pass of its own; a user would
-- need 2^30 events of one kind to overflow a field); a user's seed row carries the totals so far.
create or replace temp table _history_rows as
with events as (
    select
        user_id, ts, event_id, null as event_type, null as channel, null as campaign_id, null as device,
        null as revenue_cents, true as seed,
        impressions::hugeint | (clicks::hugeint << 30) | (carts::hugeint << 60) | (purchases::hugeint << 90)
            as counted,
        session_no, session_impressions, session_start
    from behavior_event_history_users
    where user_id in (select user_id from _history_new)
    union all
    select
        *, false as seed,
        (event_type = 'ad_impression')::hugeint
        | ((event_type = 'ad_click')::hugeint << 30)
        | ((event_type = 'add_to_cart')::hugeint << 60)
        | ((event_type = 'purchase')::hugeint << 90) as counted,
        null as session_no, null as session_impressions, null as session_start
    from _history_new
),

counts as (
    select
        * exclude (counted),
        not seed and starts_session(ts, lag(ts) over user_order) as starts,
        sum(counted) over user_order as packed,  -- totals through this event
        counted as own
    from events
    window user_order as (partition by user_id order by ts, event_id rows unbounded preceding)
),

unpacked as (
    select
        * exclude (packed, own),
        (packed & 1073741823)::bigint as impressions,
        ((packed >> 30) & 1073741823)::bigint as clicks,
        ((packed >> 60) & 1073741823)::bigint as carts,
        (packed >> 90)::bigint as purchases,
        ((packed - own) & 1073741823)::bigint as impressions_before,
        (((packed - own) >> 30) & 1073741823)::bigint as clicks_before,
        (((packed - own) >> 60) & 1073741823)::bigint as carts_before,
        ((packed - own) >> 90)::bigint as purchases_before
    from counts
),

sessions as (
    select
        * exclude (session_no, session_impressions, session_start),
        sum(case when seed then session_no else starts::int end) over user_order as session_no,
        last_value(case when seed then session_impressions when starts then impressions_before end ignore nulls)
            over user_order as session_impressions,
        last_value(case when seed then session_start when starts then ts end ignore nulls) over user_order
            as session_start,
        lead(ts) over user_order is null as is_last,  -- the user's last event: the next night continues from it
        coalesce(event_type in ('ad_impression', 'ad_click') and campaign_id is not null, false) as is_ad
    from unpacked
    window user_order as (partition by user_id order by ts, event_id rows unbounded preceding)
)

-- An ad event's label: the next ad event of its campaign in its session, partitioned by `is_ad` too so
-- that the campaign's other events do not come between. One pass over `sessions`: a union of the ad rows
-- and the others kept all of it to read it twice (this statement: 109-123 s over the bench's 44M events,
-- now 88-99 s).
select
    * exclude (seed),
    case when is_ad then lead(event_type) over (partition by user_id, session_no, campaign_id, is_ad order by ts, event_id)
    end as next_ad_event
from sessions
where not seed;

-- An ad event kept from an earlier night whose session goes on in the new events: its label is the
-- first new ad event of the same campaign in that session. Only a user's last kept session can go
-- on (behavior_event_history_users still holds its number here); a rebuild has none.
update behavior_event_history as h
set next_ad_event = f.next_ad_event
from (
    select r.user_id, r.session_no, r.campaign_id, arg_min(r.event_type, (r.ts, r.event_id)) as next_ad_event
    from _history_rows as r
    semi join behavior_event_history_users as u on r.user_id = u.user_id and r.session_no = u.session_no
    where r.is_ad
    group by r.user_id, r.session_no, r.campaign_id
) as f
where h.user_id = f.user_id and h.session_no = f.session_no and h.campaign_id = f.campaign_id
  and h.next_ad_event is null and h.event_type in ('ad_impression', 'ad_click');

insert into behavior_event_history
select
    user_id, ts, event_id, event_type, channel, campaign_id, device, revenue_cents, starts, impressions_before,
    clicks_before, carts_before, purchases_before, session_no, session_impressions, session_start, next_ad_event
from _history_rows;

insert or replace into behavior_event_history_users
select user_id, ts, event_id, impressions, clicks, carts, purchases, session_no, session_impressions, session_start
from _history_rows
where is_last;

drop table _history_rows;
drop table _history_late;
drop table _history_new;
