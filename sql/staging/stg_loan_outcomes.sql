-- Staging for loan outcomes: typed columns, status normalised.
with typed as (
    select
        _row,
        trim(try_cast(application_id as varchar)) as application_id,
        try_cast(observed_date as date) as observed_date,
        lower(trim(try_cast(status as varchar))) as status
    from raw
),

final as (select * from typed order by _row)

select * from final
