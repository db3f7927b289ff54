"""backtest layer."""
