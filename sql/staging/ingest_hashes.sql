-- The input hash of every partition of one table already loaded, to skip unchanged drops.
with final as (
    select partition_date, input_hash
    from _ingest_log
    where table_name = $table
)

select * from final
