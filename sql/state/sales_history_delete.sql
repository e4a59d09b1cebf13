-- Drop one night's stored forecasts before writing them again.
delete from sales_forecast_history where run_date = $run_date
