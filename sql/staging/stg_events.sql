-- Staging for events: type every column (a value that does not fit becomes null and the
-- contract quarantines the row as a wrong type) and normalise enum text.
with typed as (
    select
        _row,
        trim(try_cast(event_id as varchar)) as event_id,
        try_cast(user_id as bigint) as user_id,
        try_cast(ts as timestamp) as ts,
        lower(trim(try_cast(event_type as varchar))) as event_type,
        lower(trim(try_cast(channel as varchar))) as channel,
        nullif(trim(try_cast(campaign_id as varchar)), '') as campaign_id,
        lower(nullif(trim(try_cast(device as varchar)), '')) as device,
        nullif(trim(try_cast(product_id as varchar)), '') as product_id,
        try_cast(revenue_cents as bigint) as revenue_cents
    from raw
),

final as (select * from typed order by _row)

select * from final
