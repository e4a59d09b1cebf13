-- Row accounting per table as of the run date: every drop loaded so far, and the run date's own drop.
with drops as (
    select *
    from _ingest_log
    where partition_date <= $run_date
),

final as (
    select
        table_name,
        count(*) as drops,
        sum(rows_read)::bigint as rows_read,
        sum(rows_loaded)::bigint as rows_loaded,
        sum(rows_quarantined)::bigint as rows_quarantined,
        min(partition_date) as first_drop,
        max(partition_date) as last_drop,
        list(reasons) filter (where rows_quarantined > 0) as reasons,
        list(partition_date order by partition_date) as days
    from drops
    group by table_name
    order by table_name
)

select * from final
