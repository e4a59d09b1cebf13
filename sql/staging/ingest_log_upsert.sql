-- Record the row accounting of freshly loaded drops (registered as _log), replacing earlier loads.
insert or replace into _ingest_log
    (table_name, partition_date, input_hash, rows_read, rows_loaded, rows_quarantined, reasons, source, loaded_at)
select table_name, _partition, input_hash, rows_read, loaded, quarantined, reasons::json, source, current_timestamp
from _log
