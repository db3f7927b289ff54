"""Recorder + RecordingReplaySource: a recorded fake-exchange session, faults
and all, replays through the same parsing code to the identical items."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from laptop_agents.domain.contracts import MarketItem, MarketSource
from laptop_agents.domain.models import Candle
from laptop_agents.sources.recording import Recorder, RecordingError, RecordingReplaySource
from tests.exchange.support import candles, collect, errors, fake_exchange, make_source, n_candles, run


def record_session(path: Path, n: int = 14) -> tuple[list[Candle], list[MarketItem]]:
    """A live session against the fake with a disconnect (+ refused reconnect,
    so a gap is backfilled), a 429 on the backfill, malformed and duplicate frames."""
    with fake_exchange() as fake:
        recorder = Recorder(path)
        source = make_source(fake, warmup_bars=220, recorder=recorder)

        async def on_item(item: MarketItem, items: list[MarketItem]) -> None:
            count = len(candles(items))
            if not isinstance(item, Candle):
                return
            if count == 3:
                await asyncio.to_thread(fake.inject, "http_status", status=429, count=1, retry_after=0.05)
                await asyncio.to_thread(fake.inject, "reject_connect", count=1)
                await asyncio.to_thread(fake.inject, "disconnect")
            elif count == 7:
                await asyncio.to_thread(fake.inject, "malformed", count=2)
                await asyncio.to_thread(fake.inject, "duplicate", count=3)
                await asyncio.to_thread(fake.inject, "out_of_order", count=2)

        async def go() -> tuple[list[Candle], list[MarketItem]]:
            warm = await source.warmup()
            items = await collect(source, n_candles(n), on_item=on_item)
            await source.aclose()
            recorder.close()
            return warm, items

        return run(go())


async def replay(path: Path, realtime: bool = False) -> tuple[list[Candle], list[MarketItem], dict]:
    source = RecordingReplaySource(path, realtime=realtime)
    assert isinstance(source, MarketSource)
    warm = await source.warmup()
    items = [item async for item in source.stream()]
    status = source.status()
    await source.aclose()
    return warm, items, status


def test_recorded_session_replays_to_identical_items(tmp_path: Path) -> None:
    path = tmp_path / "market.jsonl"
    warm, live = record_session(path)
    assert errors(live, "ws_disconnect") and errors(live, "bad_frame")  # the faults really happened
    kinds = {json.loads(line)["k"] for line in path.read_text().splitlines()}
    assert kinds == {"meta", "rest", "ws", "ws_open", "ws_close"}

    warm2, replayed, status = run(replay(path))
    assert warm2 == warm
    # The recording holds every event the live consumer saw; the last one may
    # carry a few items the live run stopped before reading.
    assert replayed[: len(live)] == live
    assert status["finished"] and status["bad_frames"] == 2
    # The backfill and its 429 retry ran again, against the recorded replies.
    assert status["backfills"] >= 1 and status["rest"]["retries"] == 1


def test_replay_again_is_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "market.jsonl"
    record_session(path, n=6)
    first = run(replay(path))
    second = run(replay(path, realtime=False))
    assert repr(first[:2]) == repr(second[:2])


def test_a_gzipped_recording_replays_the_same(tmp_path: Path) -> None:
    import gzip

    from laptop_agents.sources.factory import is_recording

    path = tmp_path / "market.jsonl"
    record_session(path, n=6)
    packed = tmp_path / "market.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert is_recording(packed) and is_recording(path) and not is_recording(tmp_path / "c.csv.gz")
    assert repr(run(replay(packed))[:2]) == repr(run(replay(path))[:2])


def test_realtime_replay_gives_the_same_items(tmp_path: Path) -> None:
    path = tmp_path / "market.jsonl"
    record_session(path, n=4)
    assert run(replay(path, realtime=True))[:2] == run(replay(path))[:2]


def test_stream_without_warmup_call_still_primes_like_live(tmp_path: Path) -> None:
    path = tmp_path / "market.jsonl"
    record_session(path, n=5)

    async def go() -> list[MarketItem]:
        source = RecordingReplaySource(path)
        items = [i async for i in source.stream()]
        await source.aclose()
        return items

    assert run(go()) == run(replay(path))[1]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, entries: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + tail)


def test_divergent_replay_is_an_error_not_data(tmp_path: Path) -> None:
    path = tmp_path / "market.jsonl"
    record_session(path, n=3)
    entries = _lines(path)
    first_rest = next(e for e in entries if e["k"] == "rest")
    first_rest["params"]["limit"] = "7"
    bad = tmp_path / "tampered.jsonl"
    _write(bad, entries)
    with pytest.raises(RecordingError, match="replay diverged"):
        run(replay(bad))


def test_torn_last_line_is_tolerated_and_garbage_is_not(tmp_path: Path) -> None:
    path = tmp_path / "market.jsonl"
    record_session(path, n=3)
    entries = _lines(path)
    torn = tmp_path / "torn.jsonl"
    _write(torn, entries, tail='{"k":"ws","t":1,"conn":1,"data":"{\\"ch')
    assert run(replay(torn))[1] == run(replay(path))[1]

    broken = tmp_path / "broken.jsonl"
    _write(broken, entries[:5], tail="not json\n")
    with pytest.raises(RecordingError, match=r"broken.jsonl:6: not a JSON line"):
        run(replay(broken))

    nometa = tmp_path / "nometa.jsonl"
    _write(nometa, entries[1:])
    with pytest.raises(RecordingError, match="first line must be a 'meta' entry"):
        RecordingReplaySource(nometa)
    with pytest.raises(RecordingError, match="cannot read recording"):
        RecordingReplaySource(tmp_path / "missing.jsonl")


def test_recorder_lines_carry_receive_time_and_raw_bytes(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r.jsonl", clock_ms=lambda: 42)
    rec.meta(symbol="BTCUSDT", interval="1m", warmup_bars=0)
    from laptop_agents.exchange.ws import WsClosed, WsFrame, WsOpened

    rec.ws_event(WsOpened(1, 10))
    rec.ws_event(WsFrame(1, 11, "text frame"))
    rec.ws_event(WsFrame(1, 12, b"\xff\x00binary"))
    rec.ws_event(WsFrame(1, 13, b"utf8 bytes"))
    rec.ws_event(WsClosed(1, 14, "closed by server (code 1011)", False))
    rec.close()
    lines = _lines(tmp_path / "r.jsonl")
    assert [e["k"] for e in lines] == ["meta", "ws_open", "ws", "ws", "ws", "ws_close"]
    assert [e["t"] for e in lines] == [42, 10, 11, 12, 13, 14]
    from laptop_agents.sources.recording import _get_data

    assert _get_data(lines[2], "data") == "text frame"
    assert _get_data(lines[3], "data") == b"\xff\x00binary"
    assert _get_data(lines[4], "data") == b"utf8 bytes"


def test_replay_exposes_the_recorded_clock_for_the_late_candle_rule(tmp_path: Path) -> None:
    """The live runner routes candles that arrive > 2 intervals late to warm-up,
    judged by the wall clock. A replay has no wall clock; it must judge by the
    recorded receive time, or a live run that hit the rule would diverge."""
    from laptop_agents.config import load_config
    from laptop_agents.sources.factory import build_replay_source

    path = tmp_path / "market.jsonl"
    record_session(path, n=5)
    ws_times = [json.loads(line)["t"] for line in path.read_text().splitlines()[1:]
                if json.loads(line).get("k") == "ws"]

    async def go() -> list[int]:
        source = RecordingReplaySource(path)
        seen = []
        await source.warmup()
        async for item in source.stream():
            if isinstance(item, Candle):
                seen.append(source.recorded_now_ms())
        await source.aclose()
        return seen

    seen = asyncio.run(go())
    assert seen and all(t in ws_times for t in seen)
    assert seen == sorted(seen)

    config = load_config("backtest", {"trading.replay_file": str(path)}, environ={}).config
    session_source = build_replay_source(config)
    try:
        assert session_source.clock is None  # no duration limit on a replay
        assert session_source.late_clock is not None and session_source.late_after_ms == 120_000
    finally:
        asyncio.run(session_source.aclose())


@pytest.mark.parametrize("which", [0, -1], ids=["warmup", "stream"])
def test_a_diverged_replay_stops_the_session_as_bad_input(tmp_path: Path, which: int) -> None:
    """Through the runner a divergence must end the replay with a clear reason,
    never be counted as a market-data error and replayed past."""
    from laptop_agents.config import load_config
    from laptop_agents.engine import build_engine
    from laptop_agents.exit_codes import ExitCode
    from laptop_agents.report import RunWriter
    from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
    from laptop_agents.sources.factory import build_replay_source
    from laptop_agents.stop_reasons import StopReason
    from laptop_agents.store import EventJournal, StateStore
    from laptop_agents.strategy import build_strategy

    path = tmp_path / "market.jsonl"
    record_session(path, n=3)
    entries = _lines(path)
    rest = [e for e in entries if e["k"] == "rest"]
    rest[which]["params"]["limit"] = "7"  # the first warm-up page, or the stream's last REST call, no longer matches
    bad = tmp_path / "tampered.jsonl"
    _write(bad, entries)
    config = load_config("paper", {}, environ={}).config
    run_dir = tmp_path / "run"
    parts = SessionParts(engine=build_engine(config, build_strategy(config)), store=StateStore(":memory:"),
                         journal=EventJournal(run_dir / "events.jsonl"),
                         source=build_replay_source(config, bad), writer=RunWriter(run_dir))
    options = RunnerOptions(run_id="t", run_dir=run_dir, mode="replay", install_signal_handlers=False,
                            freeze_gc=False)
    runner = AsyncRunner(config, parts, options, print_fn=lambda _s: None)
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 30))
    assert outcome.reason is StopReason.REPLAY_DIVERGED and outcome.exit_code == ExitCode.BAD_INPUT
    assert "replay diverged" in outcome.detail
    assert runner.counts["source_errors"] == 0
