-- Person-level retention rows: one row per user who signed up in the last $days days and horizon
-- whose window has closed by $run_date. 7-day retention: active on any of days 1-7 after signup;
-- 28-day retention: active on any of days 22-28 (still around in the fourth week).
with cohort as (
    select user_id, signup_date, signup_channel
    from users_asof($run_date)
    where signup_date > $run_date::date - cast($days as integer)
),

active_days as (
    select distinct user_id, cast(ts as date) as day
    from events_asof($run_date)
    where ts >= $run_date::date - cast($days as integer)
),

horizons as (
    select * from (values (7, 1, 7), (28, 22, 28)) as h (horizon, first_day, last_day)
),

final as (
    select
        c.user_id,
        c.signup_channel,
        h.horizon,
        (count(a.day) > 0)::bigint as retained
    from cohort as c
    cross join horizons as h
    left join active_days as a
        on a.user_id = c.user_id
        and a.day between c.signup_date + h.first_day and c.signup_date + h.last_day
    where c.signup_date + h.last_day <= $run_date
    group by c.user_id, c.signup_channel, h.horizon
)

select * from final
