-- The behavior job's event history, kept between nights and brought forward with each night's new
-- events (jobs/behavior/event_history.py) instead of re-sorting every event of the window nightly.
--
-- One row per event of the last `days` days known by `as_of`. The counts and session numbers are
-- running totals from the user's first kept event; a mart takes differences of them (this event's
-- minus the user's first event in its window), so they need not start at zero and rows that fall
-- out of the window can simply be deleted.
create table if not exists behavior_event_history (
    user_id bigint not null,
    ts timestamp not null,
    event_id varchar not null,
    event_type varchar not null,
    channel varchar not null,
    campaign_id varchar,
    device varchar,
    revenue_cents bigint,
    starts boolean not null,  -- a session starts here: no kept event of the user in the 30 minutes before
    impressions_before bigint not null,  -- the user's events of each kind before this one
    clicks_before bigint not null,
    carts_before bigint not null,
    purchases_before bigint not null,
    session_no bigint not null,  -- sessions started up to and including this event
    session_impressions bigint not null,  -- impressions_before at the first event of this event's session
    session_start timestamp not null,  -- the time of that first event
    next_ad_event varchar  -- ad events: the type of the next ad event of the same campaign in the same session
);

-- Each user's last kept event and the totals through it: where the user's next events continue from.
create table if not exists behavior_event_history_users (
    user_id bigint primary key,
    ts timestamp not null,
    event_id varchar not null,
    impressions bigint not null,
    clicks bigint not null,
    carts bigint not null,
    purchases bigint not null,
    session_no bigint not null,
    session_impressions bigint not null,
    session_start timestamp not null
);

-- What the kept history is: as of which date, over how many days, and a checksum of the events it
-- was made from (a change to any of them, however made, means it is rebuilt).
create table if not exists behavior_event_history_state (
    table_name varchar primary key,
    as_of date not null,
    days integer not null,
    events bigint not null,
    checksum hugeint not null
);
