-- Empty the kept history before it is rebuilt.
delete from behavior_event_history;
delete from behavior_event_history_users;
