-- Staging for loans: typed columns, enum text normalised.
with typed as (
    select
        _row,
        trim(try_cast(application_id as varchar)) as application_id,
        trim(try_cast(applicant_id as varchar)) as applicant_id,
        try_cast(application_date as date) as application_date,
        try_cast(amount_cents as bigint) as amount_cents,
        try_cast(interest_rate as double) as interest_rate,
        try_cast(term_months as integer) as term_months,
        try_cast(annual_income_cents as bigint) as annual_income_cents,
        try_cast(debt_to_income as double) as debt_to_income,
        try_cast(credit_score as integer) as credit_score,
        try_cast(employment_years as double) as employment_years,
        lower(trim(try_cast(home_ownership as varchar))) as home_ownership,
        trim(try_cast(purpose as varchar)) as purpose,
        trim(try_cast(region as varchar)) as region
    from raw
),

final as (select * from typed order by _row)

select * from final
