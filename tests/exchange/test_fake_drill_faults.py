"""The fake exchange's drill faults and options, checked with a plain
websockets client: torn frames, a gap in the kline pushes while connected,
clock jumps, a market that ends, constant funding, final-value pushes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from laptop_agents.exchange import protocol
from laptop_agents.testing.fake_exchange import Fault, FaultSpecError, parse_schedule
from tests.exchange.support import START_MS, fake_exchange, run

SUB = {"op": "subscribe", "args": [{"symbol": "BTCUSDT", "ch": "market_kline_1min"}]}


async def _frames(url: str, n: int, *, during: Any = None) -> list[tuple[float, str | bytes]]:
    """``n`` raw frames after subscribing, with their arrival (monotonic) time."""
    out: list[tuple[float, str | bytes]] = []
    async with connect(url, ping_interval=None) as ws:
        await ws.recv()
        await ws.send(json.dumps(SUB))
        if during is not None:
            during()
        for _ in range(n):
            out.append((time.monotonic(), await asyncio.wait_for(ws.recv(), 10)))
    return out


def _json(frame: str | bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(frame)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def test_truncated_frames_are_the_real_frame_cut_short() -> None:
    with fake_exchange() as fake:
        frames = run(_frames(fake.ws_url, 12, during=lambda: fake.inject("truncated", count=3)))
        torn = [f for _, f in frames if _json(f) is None]
        assert len(torn) == 3
        cuts = []
        for f in torn:
            assert isinstance(f, str) and '{"ch":"market_kline_1min","symbol":"BTCUSDT"'.startswith(f[:44])
            cuts.append(len(f))
        assert len(set(cuts)) == 3  # cut at different places
        assert "truncated" in fake.stats()["faults_fired"]


def test_a_kline_gap_skips_candles_while_other_channels_and_pongs_go_on() -> None:
    with fake_exchange() as fake:
        market = fake.exchange.market

        async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            before: list[dict[str, Any]] = []
            after: list[dict[str, Any]] = []
            async with connect(fake.ws_url, ping_interval=None) as ws:
                await ws.recv()
                await ws.send(json.dumps({"op": "subscribe", "args": [
                    {"symbol": "BTCUSDT", "ch": "market_kline_1min"}, {"symbol": "BTCUSDT", "ch": "price"}]}))
                for _ in range(6):
                    before.append(json.loads(await ws.recv()))
                fake.inject(Fault("kline_gap", seconds=0.5))
                deadline = time.monotonic() + 1.2
                while time.monotonic() < deadline:
                    after.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return before, after

        before, after = run(go())
        gap = [m for m in after if m.get("ch") == "price"]
        klines = [m for m in after if m.get("ch") == "market_kline_1min"]
        assert gap and klines  # price pushes kept coming; klines came back
        last_before = max(market.index_at(m["ts"]) for m in before if m.get("ch") == "market_kline_1min")
        first_after = min(market.index_at(m["ts"]) for m in klines)
        assert first_after - last_before >= 3  # 0.5 s at 600x is 5 candles never pushed, not even as finals


def test_clock_jumps_move_the_exchange_clock_both_ways() -> None:
    with fake_exchange() as fake:
        before = fake.now_ms()
        fake.inject(Fault("clock_jump", market_s=3600.0))
        assert fake.now_ms() - before >= 3_600_000
        ahead = fake.now_ms()
        fake.inject(Fault("clock_jump", market_s=-1800.0))
        assert fake.now_ms() - ahead < -1_700_000
        assert parse_schedule("clock_jump=-300@5")[0].fault.market_s == -300.0
        with pytest.raises(FaultSpecError, match="clock_jump needs a non-zero market_s"):
            Fault("clock_jump")
        with pytest.raises(FaultSpecError, match="kline_gap needs seconds > 0"):
            Fault("kline_gap")


def test_a_market_that_ends_holds_its_clock_and_serves_no_later_candle() -> None:
    end = START_MS + 5 * 60_000
    with fake_exchange(end_ms=end) as fake:
        deadline = time.monotonic() + 5
        while fake.now_ms() < end and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.now_ms() == end
        time.sleep(0.3)
        assert fake.now_ms() == end
        rows = httpx.get(fake.rest_url + protocol.PATH_KLINE,
                         params={"symbol": "BTCUSDT", "interval": "1m", "limit": 5}).json()["data"]
        assert max(r["time"] for r in rows) == end  # the forming candle that never closes


def test_constant_funding_and_final_value_pushes() -> None:
    with fake_exchange(funding_rate=0.0003, final_values=True) as fake:
        market = fake.exchange.market
        data = httpx.get(fake.rest_url + protocol.PATH_FUNDING_RATE, params={"symbol": "BTCUSDT"}).json()["data"]
        assert float(data["fundingRate"]) == pytest.approx(0.03)
        frames = run(_frames(fake.ws_url, 20))
        for _, f in frames:
            m = _json(f)
            if m and m.get("ch") == "market_kline_1min":
                c = market.candle(market.index_at(m["ts"]))  # the forming candle too: its final values
                assert (float(m["data"]["o"]), float(m["data"]["h"]), float(m["data"]["l"]), float(m["data"]["c"])) \
                    == (c.open, c.high, c.low, c.close)
