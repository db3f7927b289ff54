"""Run the core over fixed candles and write every output to a folder, for
the compiled-versus-pure parity test (``test_compiled_parity.py`` runs this
file twice, once with ``LA_PURE=1``, and compares the folders byte for byte).

Usage: ``python tests/engine/parity_run.py OUT_DIR [CANDLE_FILE]``

Per strategy and contract: the backtest's run files (events.jsonl,
trades.csv, equity.csv, candles.csv) and, from an Engine driven directly,
the engine snapshot, the state-store encoding of its state, the step
results' equity and position (float bits), and the status.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from laptop_agents._compiled import core_kind
from laptop_agents.backtest.runner import mock_candles, mock_funding, run_backtest
from laptop_agents.config import load_config
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.engine import build_engine
from laptop_agents.engine.state import encode_state
from laptop_agents.sources.candle_files import load_candles
from laptop_agents.strategy import build_strategy

CASES = (  # (name, strategy, symbol): the default strategy and sma_cross, linear and inverse
    ("default", "default", "BTCUSDT"),
    ("sma_cross", "sma_cross", "BTCUSDT"),
    ("default-inverse", "default", "BTCUSD"),
)


def engine_outputs(out: Path, config_overrides: dict[str, object], candles: list[Candle],
                   funding: list[FundingRate]) -> None:  # fmt: skip
    config = load_config("backtest", config_overrides).config
    engine = build_engine(config, build_strategy(config))
    rates = {f.ts: f for f in funding}
    lines = []
    for c in candles:
        f = rates.get(c.ts)
        if f is not None:
            engine.on_funding(f)
        r = engine.on_candle(c)
        lines.append(f"{r.ts} {r.processed} {r.equity.hex()} {r.position_qty.hex()} {len(r.events)} {len(r.fills)}")
    (out / "steps.txt").write_text("\n".join(lines) + "\n")
    (out / "snapshot.bin").write_bytes(engine.snapshot())
    (out / "state.bin").write_bytes(encode_state(engine.state()))
    (out / "status.json").write_text(json.dumps(engine.status().to_dict(), sort_keys=True, default=repr))


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.core").write_text(core_kind())  # beside, not compared
    for name, strategy, symbol in CASES:
        overrides = {"strategy.name": strategy, "trading.symbol": symbol, "trading.duration_min": 3000}
        config = load_config("backtest", overrides).config
        candles = mock_candles(config)
        funding = mock_funding(config, candles)
        run_backtest(config, candles, funding=funding, run_dir=out / name / "run", progress=False, html=False)
        engine_outputs(out / name, overrides, candles, funding)
    if len(argv) > 1:  # a real candle file (the shared BTC-USD 15 m data), both strategies
        loaded = load_candles(Path(argv[1]))
        for strategy in ("default", "sma_cross"):
            overrides = {"strategy.name": strategy, "trading.interval": loaded.interval}
            config = load_config("backtest", overrides).config
            run_backtest(config, loaded.candles, run_dir=out / f"file-{strategy}" / "run", progress=False, html=False)
            engine_outputs(out / f"file-{strategy}", overrides, loaded.candles, [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
