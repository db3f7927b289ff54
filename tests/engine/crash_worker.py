"""A session-like loop for the crash test: candles -> Engine -> store commit ->
journal, exactly in the order the live runner uses, restarted from the store.

Run directly (``python -m tests.engine.crash_worker DB JOURNAL N SEED``) it is a
cold process start. With ``--zygote`` it imports everything once and then
forks a fresh loop process for every ``run`` line it reads on stdin, so the
test can ``kill -9`` dozens of loops in seconds instead of paying the
interpreter start-up each time. It prints ``pid N`` per loop, the loop prints
``ready`` once the store is open and the engine loaded (any order), and
``exit STATUS`` follows when the loop process is gone.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from laptop_agents.config import AppConfig
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.engine.recovery import open_engine
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store import EventJournal, StateStore
from tests.engine.scripted import ChurnStrategy

T0 = 1_699_920_000_000
FUNDING_MS = 8 * 3_600_000
REWIND = 3  # a restart re-reads a few candles it already processed (backfill overlap)


def make_candles(n: int, seed: int) -> tuple[SyntheticMarket, list[Candle]]:
    market = SyntheticMarket(seed, T0)
    return market, market.candles(0, n)


def run_loop(
    db: str,
    journal_path: str,
    n: int,
    seed: int,
    pregen: tuple[SyntheticMarket, list[Candle]] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, object]:
    market, candles = pregen or make_candles(n, seed)
    store = StateStore(db)
    engine = open_engine(store, AppConfig(), ChurnStrategy(seed))
    journal = EventJournal(journal_path)
    last = engine.last_candle_ts
    start = 0 if last is None else max(0, market.index_at(last) - REWIND)
    if on_ready is not None:
        on_ready()
    for i in range(start, n):
        c = candles[i]
        if i == start or c.ts % FUNDING_MS == 0:
            # as a source does on (re)connect and at each funding period
            engine.on_funding(FundingRate(c.ts, market.funding_rate(c.ts)))
        result = engine.on_candle(c)
        store.commit(engine, result)
        journal.write(result.events)
    journal.close()
    status = engine.status().to_dict()
    store.close()
    return status


def _say(line: str) -> None:
    """One protocol line in ONE write: the zygote and its loop process share
    the pipe, and writes below PIPE_BUF never interleave (print() may issue the
    text and the newline as two writes when output is unbuffered)."""
    os.write(1, (line + "\n").encode())


def _zygote() -> None:
    db, journal, n, seed = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    pregen = make_candles(n, seed)  # shared by every forked loop
    for line in sys.stdin:
        if line.strip() != "run":
            break
        pid = os.fork()
        if pid == 0:  # the loop process: runs until done or killed
            try:
                run_loop(db, journal, n, seed, pregen, on_ready=lambda: _say("ready"))
                code = 0
            except BaseException:  # pragma: no cover - reported via exit code
                code = 1
            os._exit(code)
        _say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"exit {status}")


def main() -> None:
    if sys.argv[1] == "--zygote":
        _zygote()
        return
    db, journal, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    status = run_loop(db, journal, n, seed)
    Path(db + ".status.json").write_text(json.dumps(status, sort_keys=True))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
