"""Research at scale: parameter studies on the real Engine, on one laptop or many machines.

The pieces, from the bottom up:

- :mod:`.walkforward` -- the unit of work of every sweep: one parameter set
  backtested on the train and the test window of each walk-forward fold,
  through the very ``Engine`` the live session drives (``validate`` and
  ``optimize`` both score with it).
- :mod:`.space` -- a search space read from a strategy's own pydantic
  parameter model (ranges from the Field constraints, steps, choices), the
  built-in strategies' search hints, ``--space`` files and ``--grid`` grids.
- :mod:`.objective` -- the walk-forward objective: the out-of-sample metric,
  the min-trades and max-drawdown constraints, pruning fold by fold.
- :mod:`.sweep` -- the one sweep engine: an Optuna study in a storage (an
  in-memory one, a SQLite file in the workspace, or any RDB URL such as
  PostgreSQL) worked on by any number of worker processes on any number of
  machines, with heartbeats so a killed worker's trial is re-run.
- :mod:`.overfit` -- the deflated Sharpe ratio and the probability of
  backtest overfitting (implemented here, papers cited there).
- :mod:`.results` and :mod:`.report` -- the leaderboard, the best parameters
  as a strategy file, the overfitting warning and the study's HTML report.
- :mod:`.commands` -- ``laptop-agents optimize``.
"""
