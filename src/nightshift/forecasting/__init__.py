"""Per-series time-series forecasting for the sales job: SARIMA, baselines, backtests, fan-out."""
