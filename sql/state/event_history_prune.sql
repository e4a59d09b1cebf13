-- Events that fell out of the window of $days days up to $run_date.
delete from behavior_event_history where ts < $run_date::date - cast($days - 1 as integer)
