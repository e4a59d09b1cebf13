-- Every store × product series known as of $run_date: its listing span and whether it is
-- active or retired (no row in the last $retire_days days), for the report's series counts.
with known as (
    select store_id, product_id, date, units
    from sales_asof($run_date)
),

spans as (
    select
        store_id,
        product_id,
        min(date) as first_date,
        max(date) as last_date,
        count(distinct date) as days_with_rows,
        sum(units) as total_units
    from known
    group by store_id, product_id
),

final as (
    select
        *,
        case when last_date > $run_date::date - $retire_days::integer then 'active' else 'retired' end as status
    from spans
    order by store_id, product_id
)

select * from final
