-- The session rule, written once: an event starts a new session when the same user's previous
-- event (in time, then event id order) is more than 30 minutes earlier, or there is none.
create or replace macro starts_session(ts, previous_ts) as coalesce(ts - previous_ts > interval 30 minute, true)
