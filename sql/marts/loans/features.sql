-- Every loan application known by $run_date with its model features and what is known of its
-- outcome by $run_date. Label lag: only outcome rows observed on or before $run_date count, so
-- nothing learned after D leaks into training. role: 'train' (final outcome known by D),
-- 'score' (applied on D, or applied within $pending_days with no outcome row yet), else null.
with apps as (
    select *
    from loans_asof($run_date)
    -- a restated application (landed again later) counts in its newest version
    qualify row_number() over (partition by application_id order by _partition desc) = 1
),

outcomes as (
    select o.application_id, o.observed_date, o.status
    from loan_outcomes_asof($run_date) o
    join apps a using (application_id)
),

known as (
    -- the first final status observed by D (and when), and whether any outcome row exists
    select
        application_id,
        min(observed_date) filter (where status in ('repaid', 'default')) as outcome_date,
        arg_min(status, observed_date) filter (where status in ('repaid', 'default')) as final_status,
        count(*) as outcome_rows
    from outcomes
    group by application_id
),

final as (
    select
        a.application_id,
        a.applicant_id,
        a.application_date,
        a.region,
        a.purpose,
        a.home_ownership,
        a.amount_cents / 100.0 as amount,
        a.annual_income_cents / 100.0 as annual_income,
        a.interest_rate,
        a.term_months,
        a.debt_to_income,
        a.credit_score,
        a.employment_years,
        a.amount_cents / greatest(a.annual_income_cents, 100) as loan_to_income,
        -- yearly instalment of an amortising loan over the income
        12 * (a.amount_cents / 100.0) * (a.interest_rate / 1200.0)
            / (1 - pow(1 + a.interest_rate / 1200.0, -a.term_months))
            / greatest(a.annual_income_cents / 100.0, 1.0) as payment_to_income,
        k.outcome_date,
        case k.final_status when 'default' then 1 when 'repaid' then 0 end as defaulted,
        case
            when k.final_status is not null then 'train'
            when a.application_date = $run_date then 'score'
            when coalesce(k.outcome_rows, 0) = 0 and a.application_date > $run_date - $pending_days then 'score'
        end as role
    from apps a
    left join known k using (application_id)
)

select * from final
order by application_date, application_id
