"""A state store written by the schema-1 release (committed fixtures, see
``fixtures/make_v1_stores.py``) opens with today's code and continues with
exactly the events, fills and account that release produced: ``state.db``
compatibility is what an unattended trader must never get wrong."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.config import load_config
from laptop_agents.domain.models import Candle
from laptop_agents.engine import open_engine
from laptop_agents.store.state import StateStore
from laptop_agents.strategy import build_strategy

FIXTURES = Path(__file__).parent / "fixtures"
CASES = {
    "default-btcusdt": {"strategy.name": "default", "trading.symbol": "BTCUSDT"},
    "smacross-btcusd": {"strategy.name": "sma_cross", "trading.symbol": "BTCUSD"},
}
_STATUS_KEYS = ("equity", "balance", "realized_pnl", "fees_paid", "funding_paid", "last_candle_ts", "position",
                "working_orders", "breaker", "trades_closed", "fills")


def _status(engine: Any) -> dict[str, Any]:
    st = engine.status().to_dict()
    return {k: st[k] for k in _STATUS_KEYS}


def _candles(name: str) -> list[Candle]:
    with (FIXTURES / f"v1-{name}.candles.csv").open(encoding="utf-8") as fh:
        return [Candle(int(r["ts"]), float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]),
                       float(r["volume"])) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_v1_store_opens_and_continues_identically(name: str, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    shutil.copyfile(FIXTURES / f"v1-{name}.db", db)
    config = load_config("paper", {"trading.source": "mock", "trading.interval": "1m", **CASES[name]},
                         environ={}).config
    store = StateStore(db)
    engine = open_engine(store, config, build_strategy(config))
    lines = [json.dumps({"reopened": _status(engine)}, sort_keys=True)]
    for c in _candles(name):
        r = engine.on_candle(c)
        store.commit(engine, r)
        if r.events or r.fills:
            lines.append(json.dumps({"ts": r.ts, "events": [e.to_dict() for e in r.events],
                                     "fills": [[f.ts, f.client_id, f.side.value, f.qty, f.price, f.fee,
                                                f.liquidity, f.reason] for f in r.fills]}, sort_keys=True))
    lines.append(json.dumps({"final": _status(engine)}, sort_keys=True))
    store.close()
    expected = (FIXTURES / f"v1-{name}.expected.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(expected)
    for got, want in zip(lines, expected, strict=True):
        assert json.loads(got) == json.loads(want)
    # ... and the continued store reopens at the same place.
    store = StateStore(db)
    again = open_engine(store, config, build_strategy(config))
    assert json.dumps({"final": _status(again)}, sort_keys=True) == lines[-1]
    store.close()
