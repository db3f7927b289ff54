"""The one command-line parser, behind two doors.

``python -m laptop_agents.run --mode ...`` (the seed system's flags, kept
exactly) and the ``laptop-agents <subcommand>`` console script share the
option definitions and the dispatch below: a seed ``--mode`` is just another
name for a subcommand. Handlers are imported lazily by dotted name so that
``--help`` stays fast and the deterministic core never imports the shell.

Each subcommand defines only the flags it uses (``TRADING_OPTIONS`` and
``DATA_OPTIONS`` filter the shared definitions), so its ``--help`` is short
and a flag meant for another command is refused instead of silently ignored.
The seed door stays flat: every seed flag with every ``--mode``, as the seed had it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from laptop_agents import __version__, interrupts
from laptop_agents.domain.errors import UsageError
from laptop_agents.exit_codes import ExitCode


class CliError(UsageError):
    """A usage error; printed as one line, exit code 2."""


class _Formatter(argparse.HelpFormatter):
    """Wraps help text at spaces only: a flag or a command name broken at one
    of its hyphens across two lines can be neither copied nor searched."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False)


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error on two+ lines; we want one clear line."""

    # The subcommand parsers by name (set by build_parser), to say where a foreign flag belongs.
    commands: dict[str, argparse.ArgumentParser]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: error: {message} (see --help)")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: str  # "module:function" returning an int exit code, imported when the command runs
    uses_config: bool = True
    needs_lock_free: bool = False


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("run", "run a live session (paper by default) on mock, bitunix or replay data",
                "laptop_agents.session.commands:cmd_run"),
        Command("backtest", "backtest a candle file (CSV/Parquet) with the live engine",
                "laptop_agents.backtest.commands:cmd_backtest"),
        Command("replay", "replay a recorded session or a candle file through the live runner",
                "laptop_agents.session.commands:cmd_replay"),
        Command("validate", "walk-forward validation over a parameter grid",
                "laptop_agents.backtest.commands:cmd_validate"),
        Command("optimize", "search strategy parameters on walk-forward backtests (Optuna; one laptop or many machines)",
                "laptop_agents.backtest.research.commands:cmd_optimize"),
        Command("preflight", "check config, workspace, exchange, keys, clock, disk and lock; PASS/FAIL each",
                "laptop_agents.session.preflight:cmd_preflight"),
        Command("selftest", "check the installation: imports, config, workspace, a tiny deterministic run",
                "laptop_agents.ops.selftest:cmd_selftest"),
        Command("status", "show the state of the session in the workspace (heartbeat, lock, last run)",
                "laptop_agents.ops.status:cmd_status"),
        Command("stop", "ask the running session to stop (creates <workspace>/kill.txt)",
                "laptop_agents.ops.commands:cmd_stop"),
        Command("dashboard", "watch the workspace's session in the web dashboard (read-only; stop = kill switch)",
                "laptop_agents.ops.dashboard:cmd_dashboard"),
        Command("report", "rebuild report.html and the summary of a run directory",
                "laptop_agents.report.commands:cmd_report"),
        Command("watchdog", "run a session and restart it when it crashes or hangs",
                "laptop_agents.ops.watchdog:cmd_watchdog"),
        Command("config", "show the effective configuration and where each value comes from",
                "laptop_agents.ops.commands:cmd_config"),
        Command("fake-exchange", "serve a fake Bitunix exchange on 127.0.0.1 (REST + websocket) with faults",
                "laptop_agents.testing.fake_exchange.commands:cmd_fake_exchange"),
        Command("fetch-candles", "download candle history from Bitunix REST to a Parquet/CSV file",
                "laptop_agents.backtest.fetch:cmd_fetch_candles"),
        Command("orders", "the open orders on the exchange account (live keys from the environment)",
                "laptop_agents.ops.account:cmd_orders"),
        Command("positions", "the open positions on the exchange account (live keys from the environment)",
                "laptop_agents.ops.account:cmd_positions"),
        Command("balance", "the futures balance of the exchange account (live keys from the environment)",
                "laptop_agents.ops.account:cmd_balance"),
        Command("flatten", "cancel every open order and close the position on the exchange, then verify "
                "(asks first unless --yes)", "laptop_agents.ops.account:cmd_flatten"),
        Command("strategies", "list the built-in strategies and their parameters (value, allowed range, meaning)",
                "laptop_agents.ops.strategies:cmd_strategies"),
        Command("drill", "chaos drill: a paper session under the watchdog against the fake exchange, faults "
                "played, invariants checked against a fault-free run; --soak for a month",
                "laptop_agents.testing.drill.commands:cmd_drill"),
    )
}

SEED_MODES: dict[str, str] = {
    "live-session": "run",
    "backtest": "backtest",
    "replay": "replay",
    "validate": "validate",
    "selftest": "selftest",
}

# CLI option dest -> dotted config key. A flag that is not given stays None
# and does not override the profile or the environment.
CONFIG_FLAGS: dict[str, str] = {
    "symbol": "trading.symbol",
    "interval": "trading.interval",
    "source": "trading.source",
    "execution_mode": "trading.execution_mode",
    "enable_live": "trading.live_enabled",
    "duration": "trading.duration_min",
    "speed": "trading.speed",
    "seed": "trading.seed",
    "replay_file": "trading.replay_file",
    "replay_realtime": "trading.replay_realtime",
    "record": "trading.record",
    "bitunix_rest_url": "trading.bitunix_rest_url",
    "bitunix_ws_url": "trading.bitunix_ws_url",
    "bitunix_private_ws_url": "trading.bitunix_private_ws_url",
    "reconcile_minutes": "trading.reconcile_minutes",
    "adopt": "trading.adopt",
    "leverage": "trading.leverage",
    "warmup_bars": "trading.warmup_bars",
    "stale_timeout": "system.stale_timeout_s",
    "health_port": "system.health_port",
    "dashboard": "system.dashboard",
    "dashboard_port": "system.dashboard_port",
    "dashboard_host": "system.dashboard_host",
    "notify": "system.notify_urls",
    "daily_summary_hour": "system.daily_summary_hour_utc",
    "live_view": "system.live_view",
    "run_async": "system.run_async",
    "log_level": "system.log_level",
    "max_errors": "system.max_errors_per_session",
    "max_md_errors": "system.max_consecutive_md_errors",
    "flatten_on_kill": "system.flatten_on_kill",
    "report_plotly": "system.report_plotly",
    "risk_pct": "risk.risk_pct",
    "equity": "risk.starting_equity",
    "stop_bps": "strategy.stop_bps",
    "tp_r": "strategy.tp_r",
    "strategy": "strategy.name",
    "strategy_file": "strategy.file",
}


# Which session/trading flags (by dest) and data flags each command takes:
# a flag a command does not use is not defined for it, so it is refused
# ("unrecognized arguments", exit 2) instead of silently ignored, and its
# --help lists only what it accepts. None = all of them. The seed parser
# (python -m laptop_agents.run) keeps every flag for every --mode, as the seed did.
_MARKET = frozenset({"symbol", "interval"})
_STRATEGY = frozenset({"strategy", "strategy_file", "risk_pct", "stop_bps", "tp_r", "equity"})
_OFFLINE = _MARKET | _STRATEGY | {"run_id"}
TRADING_OPTIONS: dict[str, frozenset[str] | None] = {
    "run": None,
    "preflight": frozenset(CONFIG_FLAGS),  # checks the configuration a run would use
    "config": frozenset(CONFIG_FLAGS),  # shows the effect of every configuration flag
    "backtest": _OFFLINE | {"duration", "seed"},  # duration and seed: the mock market without a file
    "validate": _OFFLINE | {"duration", "seed"},
    "optimize": _OFFLINE | {"duration", "seed"},
    # the exchange account commands: the market and the exchange's address (a fake exchange in tests)
    "orders": frozenset({"symbol", "bitunix_rest_url"}),
    "positions": frozenset({"symbol", "bitunix_rest_url"}),
    "balance": frozenset({"bitunix_rest_url"}),
    "flatten": frozenset({"symbol", "bitunix_rest_url"}),
    "replay": _OFFLINE | {"replay_file", "replay_realtime", "health_port", "dashboard", "dashboard_port",
                          "dashboard_host", "stale_timeout", "max_errors", "max_md_errors"},
}
DATA_OPTIONS: dict[str, frozenset[str] | None] = {
    "backtest": None,
    "validate": frozenset({"file", "data", "strict", "funding_rate", "time_column", "time_unit"}),
    "optimize": frozenset({"file", "data", "strict", "funding_rate", "time_column", "time_unit", "no_report",
                           "report_plotly"}),
    "replay": frozenset({"file", "data", "strict", "time_column", "time_unit", "report_plotly"}),  # funding comes from the recording; the report is always written
}
ACCOUNT_COMMANDS = ("orders", "positions", "balance", "flatten")
STRATEGIES_HINT = "`laptop-agents strategies` lists them with their parameters"


class _Options:
    """Adds options to an argument group, skipping those whose dest is not in ``only``."""

    def __init__(self, group: argparse._ArgumentGroup, only: Collection[str] | None) -> None:
        self.group = group
        self.only = only

    def wants(self, dest: str) -> bool:
        return self.only is None or dest in self.only

    def add(self, *flags: str, dest: str, **kw: Any) -> None:
        if self.wants(dest):
            self.group.add_argument(*flags, dest=dest, **kw)

    def flag(self, *flags: str, dest: str, help: str) -> None:
        """A switch that is None when not given (so it does not override the profile)."""
        self.add(*flags, dest=dest, action="store_const", const=True, default=None, help=help)


# Commands that only read the workspace: a read-only or damaged workspace does
# not stop them (status is what you run to find out what is wrong).
# The exchange account commands write nothing there either: a flatten must work
# on a read-only or full disk.
READ_ONLY_COMMANDS = frozenset({"status", "config", "dashboard", "orders", "positions", "balance", "flatten"})


def _store_true_or_none(group: argparse._ArgumentGroup, *flags: str, dest: str, help: str) -> None:
    group.add_argument(*flags, dest=dest, action="store_const", const=True, default=None, help=help)


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every command understands (workspace, profile, logging)."""
    g = p.add_argument_group("common")
    g.add_argument("--workspace", metavar="DIR",
                   help="state and output directory (env LAPTOP_AGENTS_WORKSPACE; default: per-user data dir)")
    g.add_argument("--profile", default="paper", metavar="NAME|FILE",
                   help="config profile: paper, live, backtest or a YAML path (default paper)")
    g.add_argument("--log-level", dest="log_level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=None)


def add_trading_options(p: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """The seed system's session flags (kept exactly) and their modern
    companions; ``only`` (option dests) keeps those one command uses."""
    m = _Options(p.add_argument_group("market data"), only)
    m.add("--source", dest="source", choices=["mock", "bitunix", "replay"], default=None,
          help="market data source (seed flag; default mock)")
    m.add("--symbol", dest="symbol", default=None,
          help="BTCUSDT (default; btc/usdt, BTC-USDT accepted) or BTCUSD (inverse) (seed flag)")
    m.add("--interval", dest="interval", default=None, help="candle interval (seed flag; default 1m)")
    m.add("--speed", dest="speed", type=float, default=None, metavar="X",
          help="mock source speed: 60 = one simulated minute per second (default 1 = real time)")
    m.add("--seed", dest="seed", type=int, default=None, help="seed of the mock price process (default 7)")
    m.add("--replay-file", dest="replay_file", default=None, metavar="FILE",
          help="recording or candle file for --source replay")
    m.flag("--realtime", dest="replay_realtime", help="replay at recorded speed (default: as fast as possible)")
    m.flag("--record", dest="record", help="record every raw market message to the run directory")
    m.add("--bitunix-rest-url", dest="bitunix_rest_url", default=None, metavar="URL")
    m.add("--bitunix-ws-url", dest="bitunix_ws_url", default=None, metavar="URL")
    m.add("--bitunix-private-ws-url", dest="bitunix_private_ws_url", default=None, metavar="URL",
          help="private websocket (live execution's order pushes)")
    m.add("--warmup-bars", dest="warmup_bars", type=int, default=None, metavar="N",
          help="candles fetched before trading starts (bitunix source)")

    st = _Options(p.add_argument_group("strategy and risk"), only)
    st.add("--strategy", dest="strategy", default=None, metavar="NAME",
           help="default, tight or sma_cross, a strategy file path (seed flag), your own strategy class as "
                f"FILE.py:ClassName (trusted code, see docs/strategies.md) or an installed one; {STRATEGIES_HINT}")
    st.add("--strategy-file", dest="strategy_file", default=None, metavar="FILE",
           help="strategy parameter file (JSON/YAML) with the parameters `laptop-agents strategies` lists")
    st.add("--risk-pct", dest="risk_pct", type=float, default=None, metavar="PCT",
           help="risk per trade in percent of equity (1.0 = 1 %%) (seed flag)")
    st.add("--stop-bps", dest="stop_bps", type=float, default=None, metavar="BPS",
           help="fixed stop distance in basis points (overrides ATR-based stops) (seed flag)")
    st.add("--tp-r", dest="tp_r", type=float, default=None, metavar="R",
           help="take-profit distance in multiples of the risk R (seed flag)")
    st.add("--equity", dest="equity", type=float, default=None,
           help="starting equity for a fresh state (default 10000)")

    se = _Options(p.add_argument_group("session"), only)
    if se.wants("run_async"):
        mode = se.group.add_mutually_exclusive_group()
        mode.add_argument("--async", dest="run_async", action="store_const", const=True, default=None,
                          help="async runner (seed flag; default)")
        mode.add_argument("--sync", dest="run_async", action="store_const", const=False,
                          help="synchronous loop (seed flag; backtest/replay only; the live session is async)")
    se.add("--duration", dest="duration", type=float, default=None, metavar="MIN",
           help="session length in minutes (seed flag); backtest without a file: minutes of mock market")
    se.add("--stale-timeout", dest="stale_timeout", type=float, default=None, metavar="SEC",
           help="end the session after this many seconds without market data (seed flag; default 60)")
    se.add("--execution-mode", dest="execution_mode", choices=["paper", "live"], default=None,
           help="paper (default) or live (seed flag)")
    se.flag("--enable-live", dest="enable_live",
            help="the explicit switch live execution needs (with --execution-mode live and API keys)")
    se.add("--reconcile-minutes", dest="reconcile_minutes", type=float, default=None, metavar="MIN",
           help="live: compare the exchange's orders, position and balance with the books every MIN minutes "
                "(and at start; default 5)")
    se.flag("--adopt", dest="adopt",
            help="live: take over a position found on the exchange that the books cannot explain (journaled)")
    se.add("--leverage", dest="leverage", type=int, default=None, metavar="N",
           help="live: set the exchange's leverage for the symbol to N at start (1..125; default: keep the "
                "account's, refused above risk.max_leverage on isolated margin)")
    se.flag("--preflight", dest="preflight", help="run the preflight checks before starting (seed flag)")
    se.flag("--dashboard", dest="dashboard",
            help="serve the live web dashboard (with /health and /metrics) on 127.0.0.1 (seed flag)")
    se.add("--dashboard-port", dest="dashboard_port", type=int, default=None, metavar="PORT",
           help="dashboard port (default 8765, or a free one when taken; 0 picks a free port)")
    se.add("--dashboard-host", dest="dashboard_host", default=None, metavar="HOST",
           help="dashboard bind address (default 127.0.0.1; anything else needs LA_DASHBOARD_TOKEN)")
    se.add("--health-port", dest="health_port", type=int, default=None, metavar="PORT",
           help="serve /health and /metrics (no pages, no controls) on 127.0.0.1:PORT (off by default; "
                "0 picks a free port)")
    se.add("--notify", dest="notify", action="append", default=None, metavar="URL",
           help="send alerts to this apprise URL (repeatable; tgram://, discord://, ntfy://, json://...; "
                "URLs with a token are better in $LA_NOTIFY_URLS)")
    se.add("--daily-summary-hour", dest="daily_summary_hour", type=int, default=None, metavar="H",
           help="send a daily summary alert at H:00 UTC (0-23; needs --notify)")
    se.add("--no-live-view", dest="live_view", action="store_const", const=False, default=None,
           help="no live panel on the terminal (and no periodic status lines elsewhere)")
    se.add("--max-errors", dest="max_errors", type=int, default=None, metavar="N",
           help="error budget (default max(20, 2 x duration minutes))")
    se.add("--max-md-errors", dest="max_md_errors", type=int, default=None, metavar="N",
           help="consecutive market-data errors before shutdown (default 3)")
    se.add("--no-flatten", dest="flatten_on_kill", action="store_const", const=False, default=None,
           help="on kill switch, cancel working orders but keep the position")
    se.add("--run-id", dest="run_id", default=None, help="name of the run directory (default: generated)")


def add_data_options(p: argparse.ArgumentParser, *, positional: bool, only: Collection[str] | None = None) -> None:
    """Candle-file options for backtest / replay / validate; ``only`` (option
    dests) keeps those one command uses."""
    g = p.add_argument_group("data")
    d = _Options(g, only)
    if positional and d.wants("file"):
        g.add_argument("file", nargs="?", default=None, help="candle file (CSV/Parquet) or recording")
    d.add("--data", dest="data", default=None, metavar="FILE", help="candle file (CSV/Parquet)")
    d.flag("--strict", dest="strict", help="refuse dirty data instead of repairing it")
    d.add("--funding-rate", dest="funding_rate", type=float, default=None, metavar="FRACTION",
          help="constant funding rate per 8 h when the file has no funding column")
    d.add("--time-column", dest="time_column", default=None, metavar="NAME",
          help="the file's time column when its name is not recognised (or DATE,TIME for a pair)")
    d.add("--time-unit", dest="time_unit", choices=["s", "ms", "us", "ns"], default=None,
          help="unit of an epoch time column (default: told apart by magnitude)")
    d.flag("--no-report", dest="no_report", help="skip report.html")
    d.add("--offline-report", dest="report_plotly", action="store_const", const="inline", default=None,
          help="embed plotly.js in report.html (+4.8 MB) so the file alone works anywhere offline; "
               "by default reports share one copy in <workspace>/assets/")


def add_validate_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("validate")
    g.add_argument("--grid", default=None, help='parameter grid, e.g. "stop_atr_mult=1,1.5,2;tp_r_mult=1.5,2"')
    g.add_argument("--splits", type=int, default=None, help="number of walk-forward folds (default 4)")
    g.add_argument("--train-frac", dest="train_frac", type=float, default=None,
                   help="train share of each fold (default 0.7)")
    g.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")


def add_optimize_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimize")
    g.add_argument("--trials", type=int, default=None, help="finished trials the study should have (default 100)")
    g.add_argument("--metric", default=None, choices=["sharpe", "sortino", "return_pct", "net_pnl"],
                   help="out-of-sample metric to maximise over the pooled test windows (default sharpe)")
    g.add_argument("--space", default=None, metavar="FILE",
                   help="YAML/JSON search space: name: {low, high, step, log}, name: [choices] or name: value")
    g.add_argument("--grid", default=None, help='run every combination of a grid once, e.g. "fast=5,10;slow=20,40"')
    g.add_argument("--min-trades", dest="min_trades", type=int, default=None,
                   help="constraint: at least this many trades over the test windows (default 10)")
    g.add_argument("--max-drawdown", dest="max_drawdown", type=float, default=None, metavar="PCT",
                   help="constraint: no test window deeper than this percent (default 30)")
    g.add_argument("--splits", type=int, default=None, help="number of walk-forward folds (default 4)")
    g.add_argument("--train-frac", dest="train_frac", type=float, default=None,
                   help="train share of each fold (default 0.7)")
    g.add_argument("--study", default=None, metavar="NAME",
                   help="study name; the same name and --storage on several machines join one study "
                        "(default: from the strategy, the data and the settings)")
    g.add_argument("--storage", default=None, metavar="URL",
                   help="study storage: a database URL (postgresql://user@host/db; password from PGPASSWORD "
                        "or ~/.pgpass) or a SQLite file (default <workspace>/studies.db)")
    g.add_argument("--workers", type=int, default=None, help="worker processes on this machine (default 1)")
    g.add_argument("--sampler-seed", dest="sampler_seed", type=int, default=None,
                   help="seed of the sampler; trial k's parameters depend only on it and earlier trials (default 1)")
    g.add_argument("--no-prune", dest="no_prune", action="store_true",
                   help="run every fold of every trial (default: stop trials behind the median fold by fold)")
    g.add_argument("--heartbeat", type=int, default=None, metavar="SEC",
                   help="heartbeat of a running trial; one silent for 3x this is re-run elsewhere (default 10)")
    g.add_argument("--top", type=int, default=None, help="leaderboard rows printed (default 10)")


def _add_subcommand_options(name: str, p: argparse.ArgumentParser) -> None:
    if name in ("run", "replay", "backtest", "validate", "preflight", "optimize"):
        add_trading_options(p, TRADING_OPTIONS[name])
    if name in ("backtest", "replay", "validate", "optimize"):
        add_data_options(p, positional=True, only=DATA_OPTIONS[name])
    if name == "validate":
        add_validate_options(p)
    if name == "optimize":
        add_optimize_options(p)
    if name in ACCOUNT_COMMANDS:
        add_trading_options(p, TRADING_OPTIONS[name])
        p.add_argument("--timeout", type=float, default=None, metavar="SEC",
                       help="seconds to wait for each exchange request (default 10)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        if name == "flatten":
            p.add_argument("--yes", action="store_true",
                           help="do not ask (needed without a terminal, e.g. in a script)")
    if name == "report":
        p.add_argument("run_dir", help="a run directory (runs/<run_id>)")
    if name == "config":
        p.add_argument("action", nargs="?", choices=["show"], default="show")
        add_trading_options(p, TRADING_OPTIONS[name])
    if name == "strategies":
        p.add_argument("strategy_name", nargs="?", default=None, metavar="NAME|FILE",
                       help="one preset, strategy file or FILE.py:ClassName (default: every built-in and "
                            "installed strategy)")
    if name == "stop":
        p.add_argument("--reason", default="user stop", help="recorded in the kill file")
        p.add_argument("--force", action="store_true", help="arm the kill switch even when nothing is running")
        fl = p.add_mutually_exclusive_group()
        fl.add_argument("--flatten", dest="flatten", action="store_const", const=True, default=None,
                        help="close the position on this stop (whatever the session's --no-flatten says)")
        fl.add_argument("--no-flatten", dest="flatten", action="store_const", const=False,
                        help="keep the position on this stop (working orders are cancelled)")
    if name == "dashboard":
        p.add_argument("--port", type=int, default=None,
                       help="port (default: system.dashboard_port, else 8765; 0 picks a free one)")
        p.add_argument("--host", default=None,
                       help="bind address (default 127.0.0.1; anything else needs LA_DASHBOARD_TOKEN)")
    if name == "watchdog":
        p.add_argument("--restart-delay", dest="restart_delay", type=float, default=10.0, metavar="SEC",
                       help="seconds before a restart (default 10), doubled per quick failure")
        p.add_argument("--max-restarts-per-hour", dest="max_restarts_per_hour", type=int, default=10)
        p.add_argument("--hang-timeout", dest="hang_timeout", type=float, default=120.0, metavar="SEC",
                       help="restart when the heartbeat is older than this (default 120)")
        p.add_argument("--max-delay", dest="max_delay", type=float, default=600.0, metavar="SEC",
                       help="cap of the exponential backoff (default 600)")
        p.add_argument("--stable-after", dest="stable_after", type=float, default=300.0, metavar="SEC",
                       help="a session that ran this long was healthy: the backoff starts over (default 300)")
        p.add_argument("run_args", nargs=argparse.REMAINDER, help="-- followed by the arguments of `run`")
    if name == "fake-exchange":
        p.add_argument("--host", default="127.0.0.1", help="bind address (loopback only)")
        p.add_argument("--port", type=int, default=0, help="port (0 = pick a free one, printed)")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--faults", default=None, help="fault schedule, e.g. 'disconnect@30,silence@90:20'")
        p.add_argument("--speed", dest="fake_speed", type=float, default=None, metavar="X",
                       help="simulated seconds per real second (default 1)")
        p.add_argument("--interval", dest="fake_interval", default=None, help="candle interval served (default 1m)")
        p.add_argument("--push-interval", dest="push_interval", type=float, default=None, metavar="SEC",
                       help="websocket push period in real seconds (default 0.5)")
        p.add_argument("--ping-timeout", dest="ping_timeout", type=float, default=None, metavar="SEC",
                       help="close sockets that do not ping for this long (default 60)")
        p.add_argument("--history-bars", dest="history_bars", type=int, default=None, metavar="N",
                       help="closed candles of REST history before the start (default 20000)")
    if name == "drill":
        p.add_argument("--quick", action="store_true", help="a simulated day in about 2 minutes")
        p.add_argument("--soak", action="store_true",
                       help="one faulted session through --days of candles (default 30) with the faults repeating; "
                            "RSS, fds, tasks, WAL and journal sampled")
        p.add_argument("--days", dest="drill_days", type=float, default=None, metavar="N",
                       help="days of one-minute market (default: 7, --quick 1, --soak 30)")
        p.add_argument("--speed", dest="drill_speed", type=float, default=None, metavar="X",
                       help="market seconds per wall second (default 1008: a week in 10 minutes; --quick 720; "
                            "--soak 2000)")
        p.add_argument("--seed", dest="drill_seed", type=int, default=None, help="market and fault seed (default 7)")
        p.add_argument("--faults", dest="drill_faults", default=None, metavar="KINDS",
                       help="fault kinds to play: all (default), none, or a comma list")
        p.add_argument("--live-fake", dest="live_fake", action="store_true",
                       help="the sessions trade live (--execution-mode live) on the fake's private side; adds the "
                            "live fault kinds and checks the exchange's order log against the books")
    if name == "fetch-candles":
        p.add_argument("--symbol", default=None)
        p.add_argument("--interval", default=None)
        p.add_argument("--out", required=True, help="output file (.parquet or .csv); resumes if it exists")
        p.add_argument("--start", default=None, help="ISO date/time or epoch ms (default: --days ago)")
        p.add_argument("--end", default=None, help="ISO date/time or epoch ms (default: now)")
        p.add_argument("--days", type=float, default=7.0)
        p.add_argument("--bitunix-rest-url", dest="bitunix_rest_url", default=None, metavar="URL")


def build_parser() -> OneLineParser:
    """The ``laptop-agents`` parser: one subcommand per feature."""
    parser = OneLineParser(
        prog="laptop-agents",
        description="An unattended BTC perpetual-futures trading agent (paper by default).",
        epilog="`laptop-agents COMMAND --help` lists the options of one command; "
        "`laptop-agents strategies` lists the strategies and their parameters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    parser.commands = {}
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        add_common_options(p)
        _add_subcommand_options(cmd.name, p)
        parser.commands[cmd.name] = p
    return parser


def unrecognized(parser: OneLineParser, command: str | None, extras: Sequence[str]) -> str:
    """One line for arguments a command does not take, naming the commands
    that do take such a flag (``backtest --health-port`` is a run option)."""
    where = f"laptop-agents {command}" if command else "laptop-agents"
    text = f"{where}: error: unrecognized arguments: {' '.join(extras)}"
    for arg in extras:
        flag = arg.split("=", 1)[0]
        if not flag.startswith("--"):
            continue
        owners = [name for name, p in parser.commands.items() if flag in p._option_string_actions]
        if owners:
            text += f"; {flag} is an option of {', '.join(owners)} only"
    return text + f" (see `{where} --help`)"


def build_seed_parser() -> OneLineParser:
    """``python -m laptop_agents.run``: the seed system's flat flags."""
    parser = OneLineParser(
        prog="python -m laptop_agents.run",
        description="Run btc-laptop-agents with the seed system's flags. "
        "The same features are under the `laptop-agents` command.",
    )
    parser.add_argument("--mode", choices=list(SEED_MODES), default="live-session",
                        help="what to run (default live-session)")
    add_common_options(parser)
    add_trading_options(parser)
    add_data_options(parser, positional=False)
    add_validate_options(parser)
    return parser


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted config keys that flags set (None = not given)."""
    return {key: getattr(args, dest) for dest, key in CONFIG_FLAGS.items() if getattr(args, dest, None) is not None}


def _load_handler(cmd: Command) -> Callable[..., int]:
    """The command's handler, imported only now: ``--help`` and a bad flag never pay for it."""
    module_name, _, func = cmd.handler.partition(":")
    handler: Callable[..., int] = getattr(importlib.import_module(module_name), func)
    return handler


def dispatch(command: str, args: argparse.Namespace) -> int:
    """Resolve workspace and config, set up logging, run the handler."""
    # Loaded only when a command runs (pydantic, logging setup): `--help` stays fast.
    from laptop_agents.config import ConfigError, load_config
    from laptop_agents.context import CommandContext
    from laptop_agents.fileio import io_error_line
    from laptop_agents.logs import get_logger, scrub, setup_logging
    from laptop_agents.workspace import Workspace

    cmd = COMMANDS[command]
    # Config first: a bad value is reported before anything is loaded or written.
    try:
        loaded = load_config(getattr(args, "profile", "paper") or "paper", config_overrides(args))
    except ConfigError as exc:
        print(scrub(f"config error: {exc}"), file=sys.stderr)
        return ExitCode.CONFIG_ERROR

    handler = _load_handler(cmd)

    workspace = Workspace.resolve(getattr(args, "workspace", None))
    writes = command not in READ_ONLY_COMMANDS
    system = loaded.config.system
    try:
        workspace.ensure()
        setup_logging(workspace.system_log, system.log_level, max_bytes=system.log_max_bytes,
                      backups=system.log_backups)
    except OSError as exc:
        if writes:
            print(f"workspace error: {io_error_line(exc)}", file=sys.stderr)
            return ExitCode.DISK_FULL
        # status / config only read: they still answer on a read-only or broken workspace.
        setup_logging(None, system.log_level)
    log = get_logger(f"cli.{command}")
    log.debug("workspace resolved", extra={"fields": {"workspace": str(workspace.root)}})
    interrupts.check()  # a Ctrl-C swallowed by a library during the imports ends it here
    ctx = CommandContext(command=command, args=args, loaded=loaded, workspace=workspace, log=log)
    return int(handler(ctx))


def _run_guarded(fn: Callable[[], int]) -> int:
    """Run a command so that it ends with an exit code and at most one line:
    a usage error (2), Ctrl-C (0, before the command's own handlers), a
    file-system problem (10: full, read-only, a directory where a file should
    be -- a restart cannot fix it) or, for anything else, a crash (1)."""
    previous = interrupts.install()
    try:
        return fn()
    except CliError as exc:
        from laptop_agents.logs import scrub  # only on a usage error: not paid by `--help`

        print(scrub(str(exc)), file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.OK
    except Exception as exc:  # the last line of defence: scrubbed, with a crash code
        if interrupts.pending():  # a Ctrl-C that a library turned into its own error
            print("interrupted", file=sys.stderr)
            return ExitCode.OK
        return _last_resort(exc)
    finally:
        interrupts.restore(previous)


def _last_resort(exc: Exception) -> int:
    # Only after a crash: the normal path (and `--help`) never pays for these.
    import logging
    import traceback

    from laptop_agents.fileio import io_error_line, is_write_problem
    from laptop_agents.logs import scrub

    text = scrub("".join(traceback.format_exception(exc)))
    if is_write_problem(exc):
        line = scrub(io_error_line(exc))
        logging.getLogger("laptop_agents.io").error(line, extra={"fields": {"traceback": text}, "console": False})
        print(line, file=sys.stderr)
        return ExitCode.DISK_FULL
    logging.getLogger("laptop_agents.crash").error("unhandled exception: %s", scrub(str(exc)),
                                                   extra={"fields": {"traceback": text}, "console": False})
    print(scrub(f"crash: {type(exc).__name__}: {exc}"), file=sys.stderr)
    return ExitCode.CRASH


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``laptop-agents``."""

    def go() -> int:
        parser = build_parser()
        args, extras = parser.parse_known_args(list(argv) if argv is not None else None)
        if extras:
            raise CliError(unrecognized(parser, args.command, extras))
        if not args.command:
            parser.print_help()
            return ExitCode.CONFIG_ERROR
        return dispatch(args.command, args)

    return _run_guarded(go)


def seed_main(argv: Sequence[str] | None = None) -> int:
    """``python -m laptop_agents.run``: the seed's flags mapped onto subcommands."""

    def go() -> int:
        args = build_seed_parser().parse_args(list(argv) if argv is not None else None)
        command = SEED_MODES[args.mode]
        if getattr(args, "file", None) is None:
            args.file = None
        if args.source == "replay" and command == "run":
            command = "replay"
        return dispatch(command, args)

    return _run_guarded(go)
