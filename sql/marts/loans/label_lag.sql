-- How long outcomes take to arrive: days from application to the first final status, per
-- outcome, for outcomes observed by $run_date (the report shows why recent months have no labels).
with apps as (
    select application_id, application_date
    from loans_asof($run_date)
    qualify row_number() over (partition by application_id order by _partition desc) = 1
),

first_final as (
    select application_id, min(observed_date) as outcome_date, arg_min(status, observed_date) as status
    from loan_outcomes_asof($run_date)
    where status in ('repaid', 'default')
    group by application_id
),

final as (
    select
        f.status,
        count(*) as outcomes,
        quantile_cont(datediff('day', a.application_date, f.outcome_date), 0.5) as median_lag_days,
        quantile_cont(datediff('day', a.application_date, f.outcome_date), 0.9) as p90_lag_days
    from first_final f
    join apps a using (application_id)
    group by f.status
)

select * from final
order by status
