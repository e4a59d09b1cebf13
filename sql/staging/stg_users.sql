-- Staging for users: typed columns, enum text normalised.
with typed as (
    select
        _row,
        try_cast(user_id as bigint) as user_id,
        try_cast(signup_date as date) as signup_date,
        lower(trim(try_cast(signup_channel as varchar))) as signup_channel,
        trim(try_cast(country as varchar)) as country,
        nullif(trim(try_cast(age_band as varchar)), '') as age_band
    from raw
),

final as (select * from typed order by _row)

select * from final
