-- The most ε already spent on $dataset in any $window_days-day window that contains $run_date.
-- A new release at $run_date falls in all those windows, so this is what it must fit beside.
-- The fullest window can be slid right until it starts at a release date or at $run_date itself;
-- the window ending on $run_date is a candidate too, so ties show the usual trailing window.
with charges as (
    select run_date, epsilon
    from _privacy_ledger
    where dataset = $dataset
      and run_date > $run_date::date - $window_days::integer
      and run_date < $run_date::date + $window_days::integer
),

starts as (
    select $run_date::date as s
    union
    select ($run_date::date - ($window_days::integer - 1))::date as s
    union
    select run_date as s from charges where run_date <= $run_date::date
),

sums as (
    select
        s.s as window_start,
        (s.s + ($window_days::integer - 1))::date as window_end,
        coalesce(sum(c.epsilon), 0.0) as spent,
        count(c.run_date) as releases
    from starts as s
    left join charges as c
        on c.run_date between s.s and s.s + ($window_days::integer - 1)
    group by s.s
),

final as (
    select window_start, window_end, spent, releases
    from sums
    order by spent desc, window_start
    limit 1
)

select * from final
