"""``selftest``: is this installation sound? Each check prints PASS/FAIL.

It exercises the real parts end to end without the network: every layer
imports, the configuration validates, the workspace is writable, secrets are
scrubbed, and a short deterministic run through the real strategy, Engine and
SQLite store gives byte-identical events twice and survives a reload.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import remove_quietly
from laptop_agents.logs import SCRUBBER, scrub

if TYPE_CHECKING:
    from laptop_agents.engine.status import EngineStatus

LAYERS = (
    "laptop_agents.domain",
    "laptop_agents.strategy",
    "laptop_agents.broker",
    "laptop_agents.engine",
    "laptop_agents.store",
    "laptop_agents.sources",
    "laptop_agents.exchange",
    "laptop_agents.session",
    "laptop_agents.backtest",
    "laptop_agents.report",
)

_CANDLES = 3000


def _check_python(ctx: CommandContext) -> str:
    return f"Python {sys.version.split()[0]}"


def _check_imports(ctx: CommandContext) -> str:
    for name in LAYERS:
        importlib.import_module(name)
    return f"{len(LAYERS)} layers import"


def _check_config(ctx: CommandContext) -> str:
    cfg = ctx.config
    return f"profile {ctx.loaded.profile}: {cfg.trading.symbol} {cfg.trading.interval} {cfg.trading.execution_mode}"


def _check_workspace(ctx: CommandContext) -> str:
    probe = ctx.workspace.root / ".selftest-probe"
    try:
        probe.write_text("ok", encoding="utf-8")
    finally:
        remove_quietly(probe)  # also after a failed write on a full disk
    return str(ctx.workspace.root)


def _check_scrubbing(ctx: CommandContext) -> str:
    secret = "selftest-secret-0123456789"
    SCRUBBER.register(secret)
    if secret in scrub(f"error with {secret} inside"):
        raise RuntimeError("a registered secret was not masked")
    return "registered secrets are masked"


def _deterministic_run(ctx: CommandContext, store_path: str) -> tuple[list[str], EngineStatus]:
    # Imported here, after the "imports" check: a broken layer is a FAIL line there, not a crash of selftest.
    from laptop_agents.engine import build_engine
    from laptop_agents.sources.synthetic import SyntheticMarket
    from laptop_agents.store.state import StateStore
    from laptop_agents.strategy import build_strategy

    cfg = ctx.config
    market = SyntheticMarket(seed=cfg.trading.seed, origin_ts=1_700_000_000_000)
    engine = build_engine(cfg, build_strategy(cfg))
    store = StateStore(store_path)
    lines: list[str] = []
    try:
        for candle in market.candles(0, _CANDLES):
            result = engine.on_candle(candle)
            store.commit(engine, result)
            lines.extend(json.dumps(e.to_dict(), sort_keys=True, separators=(",", ":")) for e in result.events)
        status = engine.status()
        reloaded = store.load_engine(cfg, build_strategy(cfg))
        if reloaded is None or reloaded.status() != status:
            raise RuntimeError("the engine restored from the store differs from the running one")
    finally:
        store.close()
    return lines, status


def _check_determinism(ctx: CommandContext) -> str:
    with tempfile.TemporaryDirectory(prefix="la-selftest-") as tmp:
        first, status = _deterministic_run(ctx, str(Path(tmp) / "a.db"))
        second, _ = _deterministic_run(ctx, str(Path(tmp) / "b.db"))
    if first != second:
        raise RuntimeError("two runs over the same candles produced different events")
    return f"{_CANDLES} candles twice: {len(first)} identical events, equity {status.equity}"


CHECKS: tuple[tuple[str, Callable[[CommandContext], str]], ...] = (
    ("python", _check_python),
    ("imports", _check_imports),
    ("config", _check_config),
    ("workspace", _check_workspace),
    ("secret scrubbing", _check_scrubbing),
    ("deterministic engine + store", _check_determinism),
)


def cmd_selftest(ctx: CommandContext) -> int:
    """Run every check; exit 0 when all pass, PREFLIGHT_FAILED otherwise."""
    print(f"workspace: {ctx.workspace.root}")
    failed = 0
    for name, check in CHECKS:
        try:
            detail = check(ctx)
            print(f"PASS  {name}: {detail}")
        except Exception as exc:
            failed += 1
            print(scrub(f"FAIL  {name}: {type(exc).__name__}: {exc}"))
            ctx.log.error("selftest check failed", extra={"fields": {
                "check": name, "traceback": scrub(traceback.format_exc())}})
    print("selftest: all checks passed" if not failed else f"selftest: {failed} check(s) failed")
    return ExitCode.OK if not failed else ExitCode.PREFLIGHT_FAILED
