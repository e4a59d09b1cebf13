-- The row accounting of one loaded partition.
with final as (
    select rows_read, rows_loaded, rows_quarantined, reasons
    from _ingest_log
    where table_name = $table and partition_date = $day
)

select * from final
