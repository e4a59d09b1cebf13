-- Store one night's forecasts (the frame registered as `_incoming`).
insert into sales_forecast_history by name
select * from _incoming where run_date = $run_date
