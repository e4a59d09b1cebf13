-- What the kept history is now (no row: none is kept).
select as_of, days, events, checksum from behavior_event_history_state
