-- The partitions of one table with rows quarantined for a reference to a row that did not exist
-- (rules named "unknown <column>"): checked again when the table they reference changes.
with logged as (
    select partition_date, unnest(json_keys(reasons)) as rule
    from _ingest_log
    where table_name = $table and rows_quarantined > 0
),

final as (
    select distinct partition_date
    from logged
    where starts_with(rule, 'unknown ')
)

select * from final
