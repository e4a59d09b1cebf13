-- Every night's forecasts, kept so that they can be scored once their actuals arrive.
-- One run date's rows are replaced as a whole, so a rerun of a night is idempotent.
-- `freq` is the series' frequency that night (it says whether a missing actual sold nothing); a
-- table from before frequencies existed gets it added as daily, which every forecast then was.
create table if not exists sales_forecast_history (
    run_date date not null,
    store_id varchar not null,
    product_id varchar not null,
    date date not null,
    horizon integer not null,
    mean double not null,
    lower_80 double not null,
    upper_80 double not null,
    lower_95 double not null,
    upper_95 double not null,
    naive double not null,
    scale double,
    model varchar not null,
    freq varchar default 'daily'
);

alter table sales_forecast_history add column if not exists freq varchar default 'daily'
