-- Record what the kept history now is.
insert or replace into behavior_event_history_state
values ('behavior_event_history', $as_of, $days, $events, $checksum)
