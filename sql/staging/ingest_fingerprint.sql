-- A fingerprint per table of every drop loaded up to the run date: changes when any input does.
with final as (
    select
        table_name,
        count(*) as partitions,
        sum(rows_loaded)::bigint as rows_loaded,
        md5(string_agg(partition_date::varchar || ':' || input_hash, ',' order by partition_date)) as fingerprint
    from _ingest_log
    where list_contains($tables, table_name) and partition_date <= $run_date
    group by table_name
    order by table_name
)

select * from final
