"""``laptop-agents backtest`` and ``laptop-agents validate``.

Data: the candle file named by the positional FILE or ``--data``. Without a
file, both commands use the **mock market** (the seeded synthetic BTC process
of ``--source mock``) for ``trading.duration_min`` minutes (``--duration``,
default 60) at ``trading.interval``, starting 2024-01-01T00:00Z, seed
``--seed``: a reproducible demo that needs no data. The interval of a file is
the file's own; an explicit ``--interval`` that disagrees is an error.

Outputs go to ``<workspace>/runs/<run_id>/`` (``--run-id``, default
``backtest-<UTC time>-<strategy>`` / ``validate-...``). Backtests never open
the workspace's ``state.db``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from laptop_agents.backtest.runner import mock_candles, mock_funding, run_backtest
from laptop_agents.backtest.validate import DataSpec, GridError, parse_grid, walk_forward, write_leaderboard
from laptop_agents.config import AppConfig
from laptop_agents.context import CommandContext
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import problem
from laptop_agents.logs import scrub
from laptop_agents.report.console import print_summary
from laptop_agents.sources.candle_files import CandleFileError, load_candles
from laptop_agents.strategy import StrategyConfigError, build_strategy
from laptop_agents.workspace import RunIdError, new_run_id


class _Fail(LaptopAgentsError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _out() -> Console:
    """stdout console; when piped, wide enough that tables are not squeezed to 80 columns."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def _err(console: Console, message: str) -> None:
    console.print(scrub(message), markup=False, emoji=False, highlight=False, soft_wrap=True)


def _failed(console: Console, exc: Exception, writing: str) -> int:
    """One line and the exit code for what ended a backtest or validation early:
    a usage/data failure (its own code), a bad strategy (2) or a write error (10)."""
    if isinstance(exc, _Fail):
        _err(console, str(exc))
        return exc.code
    if isinstance(exc, StrategyConfigError):
        _err(console, f"strategy error: {exc}")
        return ExitCode.CONFIG_ERROR
    assert isinstance(exc, OSError)
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    _err(console, f"cannot write {writing}: {problem(exc)}{where}")
    return ExitCode.DISK_FULL


def _data_file(ctx: CommandContext) -> Path | None:
    raw = getattr(ctx.args, "file", None) or getattr(ctx.args, "data", None)
    return Path(raw).expanduser() if raw else None


def _explicit(ctx: CommandContext, key: str) -> bool:
    src = ctx.loaded.sources.get(key, "default")
    return src == "cli" or src.startswith("env")


def load_data(
    ctx: CommandContext, config: AppConfig, err: Console
) -> tuple[AppConfig, list[Candle], list[FundingRate], dict[str, Any] | None, str, Path | None]:
    """Candles, funding updates, the file's problem report and a description;
    the config comes back with the data's interval."""
    file = _data_file(ctx)
    if file is None:
        candles = mock_candles(config)
        desc = (f"no candle file: mock market, seed {config.trading.seed}, {config.trading.duration_min:g} min "
                f"of {config.trading.interval} candles from 2024-01-01T00:00Z")
        return config, candles, mock_funding(config, candles), None, desc, None
    strict = bool(getattr(ctx.args, "strict", False))
    try:
        loaded = load_candles(file, strict=strict, **time_options(ctx))
    except CandleFileError as exc:
        raise _Fail(ExitCode.BAD_INPUT, f"bad candle file: {exc}") from None
    except OSError as exc:  # reading, not writing: the file is the problem
        raise _Fail(ExitCode.BAD_INPUT, f"bad candle file: {file.name}: cannot read it ({exc.strerror or exc})") from None
    for line in loaded.report.lines():
        err.print(scrub(line), markup=False, highlight=False, style="dim", soft_wrap=True)
    if _explicit(ctx, "trading.interval") and config.trading.interval != loaded.interval:
        raise _Fail(ExitCode.BAD_INPUT, f"{file.name} has {loaded.interval} candles but --interval "
                    f"{config.trading.interval} was given; drop --interval or pass {loaded.interval}")
    cfg = config.model_copy(deep=True)
    cfg.trading.interval = loaded.interval
    return cfg, loaded.candles, loaded.funding, loaded.report.to_dict(), f"candle file {file}", file


def time_options(ctx: CommandContext) -> dict[str, str | None]:
    """``--time-column`` / ``--time-unit`` as ``load_candles`` keywords."""
    return {"time_column": getattr(ctx.args, "time_column", None), "time_unit": getattr(ctx.args, "time_unit", None)}


def claim_run_id(ctx: CommandContext, prefix: str, strategy: str) -> str:
    """``--run-id`` (checked) or ``<prefix>-<UTC time>-<strategy>``; its directory is
    created here, exclusively, so no earlier run's files are ever overwritten."""
    ws = ctx.workspace
    given = getattr(ctx.args, "run_id", None)
    if given is not None:
        try:
            ws.new_run_dir(given)
        except RunIdError as exc:
            raise _Fail(ExitCode.CONFIG_ERROR, str(exc)) from None
        return str(given)
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(strategy).stem).strip(".-")[:40] or "strategy"
    return ws.claim_run_dir(new_run_id(prefix, label))


def cmd_backtest(ctx: CommandContext) -> int:
    """Backtest a candle file (or the mock market) with the live Engine; write runs/<run_id>/."""
    out = _out()
    err = Console(stderr=True)
    try:
        label = build_strategy(ctx.config).name  # a bad strategy fails before any data is read
        config, candles, funding, data_report, desc, file = load_data(ctx, ctx.config, err)
        if not candles:
            raise _Fail(ExitCode.BAD_INPUT, "no candles to backtest")
        run_id = claim_run_id(ctx, "backtest", label)
        run_dir = ctx.workspace.run_dir(run_id)
        err.print(scrub(desc), markup=False, highlight=False, style="dim", soft_wrap=True)
        fields: dict[str, Any] = {"run_id": run_id, "source": desc}
        if data_report is not None:
            fields["data_report"] = data_report
        if getattr(ctx.args, "funding_rate", None) is not None:
            fields["constant_funding_rate"] = ctx.args.funding_rate
        ctx.log.debug("backtest start", extra={"fields": {"run_id": run_id, "candles": len(candles), "source": desc}})
        result = run_backtest(
            config, candles, funding=funding, constant_funding=getattr(ctx.args, "funding_rate", None),
            run_dir=run_dir, summary_fields=fields, html=not getattr(ctx.args, "no_report", False),
        )
    except (_Fail, StrategyConfigError, OSError) as exc:
        return _failed(err, exc, "the run output")
    print_summary(result.summary, console=out)
    out.print(f"{result.steps:,} candles in {result.elapsed_s:.2f} s ({result.candles_per_s:,.0f} candles/s)",
              highlight=False)
    out.print(f"run directory: {run_dir}", markup=False, highlight=False)
    if result.report is not None and result.report.name == "report.html":
        out.print(f"report: {result.report}", markup=False, highlight=False)
    ctx.log.info("backtest done", extra={"fields": {"run_id": run_id, "net_pnl": result.metrics["net_pnl"],
                                                    "trades": result.metrics["trades"]}})
    return ExitCode.OK


def cmd_validate(ctx: CommandContext) -> int:
    """Walk-forward validation over ``--grid``; leaderboard.csv/json in runs/<run_id>/."""
    out = _out()
    err = Console(stderr=True)
    args = ctx.args
    try:
        try:
            grid = parse_grid(getattr(args, "grid", None))
        except GridError as exc:
            raise _Fail(ExitCode.CONFIG_ERROR, f"bad --grid: {exc}") from None
        label = build_strategy(ctx.config).name  # a bad strategy fails before any data is read
        config, candles, _funding, data_report, desc, file = load_data(ctx, ctx.config, err)
        for combo in grid:  # refuse a bad parameter name or value before any work starts
            build_strategy(config, overrides=combo)
        jobs = getattr(args, "jobs", None)
        if jobs is not None and jobs < 1:
            raise _Fail(ExitCode.CONFIG_ERROR, f"bad --jobs {jobs}: must be >= 1")
        splits = getattr(args, "splits", None) or 4
        train_frac = getattr(args, "train_frac", None) or 0.7
        run_id = claim_run_id(ctx, "validate", label)
        run_dir = ctx.workspace.run_dir(run_id)
        spec = DataSpec(file=str(file.resolve()) if file else None, strict=bool(getattr(args, "strict", False)),
                        interval=config.trading.interval if file else None, **time_options(ctx))
        err.print(scrub(f"{desc}; {len(grid)} combination(s) x {splits} fold(s)"), markup=False, highlight=False,
                  style="dim", soft_wrap=True)
        try:
            doc = walk_forward(config, spec, grid, n_candles=len(candles), splits=splits, train_frac=train_frac,
                               jobs=jobs, constant_funding=getattr(args, "funding_rate", None))
        except GridError as exc:
            raise _Fail(ExitCode.CONFIG_ERROR, str(exc)) from None
        doc = {"run_id": run_id, "mode": "validate", "strategy": label,
               "symbol": config.trading.symbol, "interval": config.trading.interval, "source": desc,
               "grid": getattr(args, "grid", None) or "", "data_report": data_report, **doc}
        csv_path, json_path = write_leaderboard(doc, run_dir)
    except (_Fail, StrategyConfigError, OSError) as exc:
        return _failed(err, exc, "the leaderboard")
    out.print(leaderboard_table(doc))
    out.print(picks_table(doc))
    oos = doc["out_of_sample"]
    out.print(f"out of sample (picked params, test windows): net PnL {oos['net_pnl_total']:,.2f}, "
              f"trades {oos['trades_total']}, mean return % {_f(oos['return_pct_mean'])}, "
              f"mean Sharpe {_f(oos['sharpe_mean'])}", highlight=False)
    out.print(f"leaderboard: {csv_path}\n             {json_path}", markup=False, highlight=False)
    return ExitCode.OK


def _f(v: Any, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items()) or "(configured)"


def leaderboard_table(doc: dict[str, Any], top: int = 15) -> Table:
    t = Table(title=f"walk-forward leaderboard ({len(doc['folds'])} folds, by mean test return)", title_justify="left")
    for col in ("#", "params", "picked", "train Sharpe", "test Sharpe", "train ret %", "test ret %",
                "test PnL", "test trades", "worst test DD %"):
        t.add_column(col, justify="left" if col == "params" else "right", no_wrap=col == "params")
    for rank, r in enumerate(doc["leaderboard"][:top], 1):
        t.add_row(str(rank), _params(r["params"]), str(r["picked"]), _f(r["train_sharpe_mean"]),
                  _f(r["test_sharpe_mean"]), _f(r["train_return_pct_mean"]), _f(r["test_return_pct_mean"]),
                  _f(r["test_net_pnl_total"]), str(r["test_trades_total"]), _f(r["test_max_drawdown_pct_worst"]))
    return t


def picks_table(doc: dict[str, Any]) -> Table:
    t = Table(title="picked on train, scored on test", title_justify="left")
    for col in ("fold", "test window", "params", "train Sharpe", "test Sharpe", "test ret %", "test trades"):
        t.add_column(col, justify="left" if col in ("params", "test window") else "right",
                     no_wrap=col in ("params", "test window"))
    for p in doc["picks"]:
        a, b = p["test_range"]
        t.add_row(str(p["fold"]), f"{ms_to_iso(a)[:16]} → {ms_to_iso(b)[:16]}", _params(p["params"]),
                  _f(p["train"]["sharpe"]), _f(p["test"]["sharpe"]), _f(p["test"]["return_pct"]),
                  str(p["test"]["trades"]))
    return t

