-- Person-level rows for new users: one row per user who signed up in the last $days days.
with final as (
    select user_id, signup_date as day, signup_channel as channel
    from users_asof($run_date)
    where signup_date > $run_date::date - cast($days as integer)
)

select * from final
