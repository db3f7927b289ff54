"""Alerts: delivered by apprise to a real HTTP server on 127.0.0.1, and never in the caller's way."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from laptop_agents.console import alerts as A
from laptop_agents.console.alerts import Alert, AlertKind, AlertWatcher, Notifier, WatchRules
from tests.console.fakes import T0, FakeSession


class Receiver:
    """A local webhook: ``/ok`` answers 200, ``/fail`` 500, ``/hang`` holds the
    request until :attr:`release` is set."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        self.arrived = threading.Event()  # a /hang request is being held
        self.held = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.paths.append(self.path)
                if self.path.startswith("/hang"):
                    outer.held += 1
                    outer.arrived.set()
                    outer.release.wait(30)
                if self.path.startswith("/fail"):
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.release.set()
        r.server.shutdown()
        r.server.server_close()


def one_of_each() -> list[Alert]:
    return [
        A.session_started("live-1", mode="live-session", source="mock", symbol="BTCUSDT",
                          dashboard_url="http://127.0.0.1:8080/"),
        A.session_stopped("live-1", reason="stale_data", exit_code=4, detail="no market data for 61.0 s",
                          equity=10_012.5, net_pnl=12.5),
        A.trade_opened(side="long", qty=0.01, price=64_000.0, stop=63_800.0, target=64_600.0, reason="sweep",
                       client_id="e1", symbol="BTCUSDT"),
        A.trade_closed(side="long", qty=0.01, entry_price=64_000.0, exit_price=64_600.0, net_pnl=5.62,
                       exit_reason="target", client_id="e1"),
        A.stale_data(age_s=31.0, timeout_s=60.0, source="bitunix"),
        A.reconnect_storm(reconnects=6, window_s=600.0, state="connecting"),
        A.error_budget(total=25, budget=50, by_kind={"market_data": 25}),
        A.error_budget(total=50, budget=50),
        A.breaker_tripped(reason="daily_drawdown", until_ts=T0, value=0.031),
        A.kill_switch(run_id="live-1", detail="kill.txt", flatten=True),
        A.watchdog_restart(restart=2, exit_code=4, reason="stale_data", delay_s=20.0),
        A.daily_summary(day=date(2026, 1, 1), equity=10_050.0, day_pnl=50.0, trades=3,
                        position={"qty": 0.01, "side": "long"}, errors=2, run_id="live-1"),
    ]


def test_every_alert_kind_reaches_a_real_http_endpoint(receiver: Receiver) -> None:
    notifier = Notifier.from_urls([receiver.url("/ok/hook")], timeout_s=10.0, burst=100)
    assert notifier is not None
    alerts = one_of_each()
    assert {a.kind for a in alerts} == set(AlertKind)  # a new kind must join this test
    try:
        for a in alerts:
            assert notifier.send(a) is True
        assert notifier.flush(30.0)
    finally:
        notifier.close()
    assert notifier.stats.sent == len(alerts) and notifier.stats.failed == 0
    got = {(m["title"], m["message"]) for m in receiver.received}
    assert got == {(a.title, a.body) for a in alerts}
    by_title = {m["title"]: m for m in receiver.received}
    stopped = by_title["Session stopped [live-1]: stale_data"]
    assert stopped["type"] == "failure" and "exit 4" in stopped["message"] and "+12.50" in stopped["message"]
    assert by_title["Trade closed: +5.62"]["type"] == "success"
    assert "restart #2" in by_title["Watchdog restart"]["message"]
    assert "2026-01-01" in by_title["Daily summary 2026-01-01 [live-1]"]["title"]
    assert all(p == "/ok/hook" for p in receiver.paths)


def test_a_hanging_notifier_never_blocks_the_caller(receiver: Receiver) -> None:
    """Structural: every send() returns while the service still holds the first
    delivery (the server only answers after the test releases it), so the caller
    cannot be waiting for the network. The queue stays bounded, oldest dropped."""
    notifier = Notifier.from_urls([receiver.url("/hang")], timeout_s=60.0, queue_size=3, burst=100)
    assert notifier is not None
    try:
        notifier.send(A.stale_data(age_s=1.0))
        assert receiver.arrived.wait(10.0), "the worker is inside the delivery"

        async def session() -> int:
            """A candle loop that alerts on every candle, as a busy session might."""
            done = 0
            for i in range(50):
                notifier.send(A.trade_closed(side="long", qty=0.01, entry_price=1.0, exit_price=2.0, net_pnl=float(i),
                                             client_id=f"c{i}"))
                done += 1
                await asyncio.sleep(0)
            return done

        assert asyncio.run(session()) == 50
        assert not receiver.release.is_set() and receiver.held == 1  # still hanging on the first one
        assert notifier.stats.queued == 51 and notifier.stats.dropped_full == 47
        assert notifier.pending == 4  # three queued + the one in flight
        receiver.release.set()
        assert notifier.flush(30.0)
    finally:
        notifier.close()
    # The first (held) one and the three newest arrive; the dropped ones never do.
    assert [m["title"] for m in receiver.received] == ["Stale market data", "Trade closed: +47.00",
                                                      "Trade closed: +48.00", "Trade closed: +49.00"]


def test_the_call_timeout_frees_the_worker_from_a_hung_service(receiver: Receiver) -> None:
    notifier = Notifier.from_urls([receiver.url("/hang")], timeout_s=0.3, burst=100)
    assert notifier is not None
    try:
        notifier.send(A.stale_data(age_s=1.0))
        notifier.send(A.reconnect_storm(reconnects=5, window_s=60.0))
        assert notifier.flush(20.0), "both deliveries were abandoned at their timeout"
        assert not receiver.release.is_set()  # while the service never answered
    finally:
        notifier.close(timeout_s=0.1)
    assert notifier.stats.failed == 2 and notifier.stats.sent == 0


def test_a_500_notifier_fails_quietly_and_leaks_no_url(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    secret = "S3cretHookToken0123456789"
    notifier = Notifier.from_urls([receiver.url(f"/fail/{secret}")], timeout_s=5.0, burst=100)
    assert notifier is not None
    caplog.set_level(logging.DEBUG)
    try:
        assert notifier.send(A.kill_switch(run_id="r", detail="x")) is True
        assert notifier.flush(20.0)
    finally:
        notifier.close()
    assert notifier.stats.failed == 1 and notifier.stats.sent == 0
    assert receiver.paths == [f"/fail/{secret}"]
    # apprise's own records quote the URL: they must stay out of the root logger's handlers.
    assert logging.getLogger("apprise").propagate is False
    ours = [r for r in caplog.records if r.name.startswith("laptop_agents")]
    assert any("was not delivered" in r.getMessage() for r in ours)
    assert not any(secret in r.getMessage() for r in ours)


def test_a_sender_that_raises_is_counted_not_raised() -> None:
    def broken(alert: Alert) -> bool:
        raise ConnectionError("refused")

    n = Notifier(broken)
    try:
        assert n.send(A.stale_data(age_s=3.0))
        assert n.flush(5.0)
    finally:
        n.close()
    assert n.stats.failed == 1


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_dedup_and_rate_limit() -> None:
    sent: list[Alert] = []
    clock = Clock()
    n = Notifier(lambda a: sent.append(a) is None, dedup_s=300.0, burst=2, per_minute=1.0, clock=clock)
    try:
        stale = A.stale_data(age_s=40.0)
        assert n.send(stale)
        assert not n.send(A.stale_data(age_s=55.0))  # same key ("stale") within the window
        assert n.stats.deduplicated == 1
        assert n.send(A.reconnect_storm(reconnects=5, window_s=60))
        # The bucket (2) is empty: ordinary alerts are dropped and counted ...
        assert not n.send(A.breaker_tripped(reason="losses", until_ts=1))
        assert not n.send(A.trade_closed(side="long", qty=1, entry_price=1, exit_price=2, net_pnl=1, client_id="a"))
        assert n.stats.rate_limited == 2
        # ... but the last word of a session is never rate-limited away.
        assert n.send(A.session_stopped("r", reason="crash", exit_code=1))
        clock.t += 60.0  # one token back
        assert n.send(A.trade_closed(side="long", qty=1, entry_price=1, exit_price=2, net_pnl=1, client_id="b"))
        clock.t += 301.0
        assert n.send(A.stale_data(age_s=40.0))  # the dedup window has passed
        assert n.flush(5.0)
    finally:
        n.close()
    assert [a.kind for a in sent] == [AlertKind.STALE_DATA, AlertKind.RECONNECT_STORM, AlertKind.SESSION_STOPPED,
                                      AlertKind.TRADE_CLOSED, AlertKind.STALE_DATA]
    assert "2 earlier alerts suppressed" in sent[2].body
    assert "suppressed" not in sent[3].body


def test_the_daily_summary_is_never_rate_limited_away() -> None:
    """Found by the session test: a busy trading hour emptied the bucket, the
    summary due at that moment was dropped, and the watcher had already moved
    on to the next day -- a whole day without its summary."""
    sent: list[Alert] = []
    n = Notifier(lambda a: sent.append(a) is None, burst=2, per_minute=1.0, clock=Clock())
    try:
        for i in range(3):
            n.send(A.trade_closed(side="long", qty=1, entry_price=1, exit_price=2, net_pnl=1, client_id=f"t{i}"))
        assert n.stats.rate_limited == 1
        assert n.send(A.daily_summary(day=date(2026, 1, 2), equity=10_000.0))
        assert n.flush(5.0)
    finally:
        n.close()
    assert sent[-1].kind is AlertKind.DAILY_SUMMARY


def test_notify_urls_sources_and_bad_urls() -> None:
    env = {"LA_NOTIFY_URLS": "json://a.example/x, ntfy://topic  json://a.example/x"}
    assert A.notify_urls(["tgram://1/2"], ["ntfy://topic"], env) == ["tgram://1/2", "ntfy://topic", "json://a.example/x"]
    assert A.notify_urls(None, None, {}) == []
    assert Notifier.from_urls([]) is None
    with pytest.raises(ValueError) as err:
        A.AppriseSender(["nonsense://user:VerySecretPassword1@host/path"])
    assert "VerySecretPassword1" not in str(err.value) and "nonsense://host/…" in str(err.value)


def test_next_daily() -> None:
    t = datetime(2026, 1, 1, 6, 30, tzinfo=UTC).timestamp()
    assert A.next_daily(t, 7) == datetime(2026, 1, 1, 7, tzinfo=UTC).timestamp()
    assert A.next_daily(t, 6) == datetime(2026, 1, 2, 6, tzinfo=UTC).timestamp()
    assert A.next_daily(datetime(2026, 1, 1, 7, tzinfo=UTC).timestamp(), 7) == datetime(2026, 1, 2, 7, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError, match="0..23"):
        A.next_daily(t, 24)


def test_watcher_turns_session_changes_into_alerts() -> None:
    s = FakeSession()
    sent: list[Alert] = []
    wall = Clock()
    wall.t = datetime(2026, 1, 1, 6, 59, tzinfo=UTC).timestamp()
    mono = Clock()
    n = Notifier(lambda a: sent.append(a) is None, burst=100)
    w = AlertWatcher(s.view, n, WatchRules(reconnect_storm=3, reconnect_window_s=60.0, daily_summary_hour_utc=7),
                     wall_clock=wall, monotonic=mono)
    try:
        w.check()
        assert w.sent == []
        # A trade opens: the entry fill at the position's entry time.
        c = s.candle(64_000.0)
        s.events(("fill", {"client_id": "e1", "side": "BUY", "qty": 0.01, "price": 64_000.0, "reason": "sweep"}))
        s.state["position"] = {"qty": 0.01, "side": "long", "entry_price": 64_000.0, "entry_ts": c.ts,
                               "stop": 63_800.0, "target": 64_600.0, "unrealized": 0.0}
        w.check()
        assert w.sent == [AlertKind.TRADE_OPENED]
        # ... and closes at its target: the exit fill alerts nothing, the closed trade does.
        c2 = s.candle(64_600.0)
        s.events(("fill", {"client_id": "x1", "side": "SELL", "qty": 0.01, "price": 64_600.0, "reason": "target"}),
                 ("trade_closed", {"side": "long", "qty": 0.01, "entry_ts": c.ts, "entry_price": 64_000.0,
                                   "exit_ts": c2.ts, "exit_price": 64_600.0, "net_pnl": 5.5, "exit_reason": "target",
                                   "client_id": "e1"}))
        s.state["position"] = {"qty": 0.0, "side": "flat"}
        w.check()
        assert w.sent[-1] is AlertKind.TRADE_CLOSED and len(w.sent) == 2
        # A trade opened and closed between two checks still alerts both.
        c3 = s.candle(64_500.0)
        s.events(("fill", {"client_id": "e2", "side": "SELL", "qty": 0.01, "price": 64_500.0, "reason": "sma"}),
                 ("fill", {"client_id": "x2", "side": "BUY", "qty": 0.01, "price": 64_700.0, "reason": "stop"}),
                 ("trade_closed", {"side": "short", "qty": 0.01, "entry_ts": c3.ts, "entry_price": 64_500.0,
                                   "exit_ts": c3.ts, "exit_price": 64_700.0, "net_pnl": -2.1, "exit_reason": "stop",
                                   "client_id": "e2"}))
        w.check()
        assert w.sent[-2:] == [AlertKind.TRADE_OPENED, AlertKind.TRADE_CLOSED]
        # Stale data: once per stale spell (half the session's timeout by default).
        s.state["market_data_age_s"] = 31.0
        w.check()
        w.check()
        assert w.sent.count(AlertKind.STALE_DATA) == 1
        s.state["market_data_age_s"] = 1.0
        w.check()
        s.state["market_data_age_s"] = 45.0
        w.check()
        assert w.sent.count(AlertKind.STALE_DATA) == 1  # deduplicated by the notifier within its window
        # A reconnect storm: 3 reconnects within the window.
        s.state["source"] = {**s.state["source"], "reconnects": 1}
        w.check()
        mono.t += 100.0
        s.state["source"]["reconnects"] = 2
        w.check()  # the first one is out of the window now
        s.state["source"]["reconnects"] = 4
        mono.t += 10.0
        assert AlertKind.RECONNECT_STORM not in w.sent
        w.check()
        assert AlertKind.RECONNECT_STORM in w.sent
        # The error budget: once at half, once exhausted.
        s.state["errors"] = {**s.state["errors"], "total": 5, "market_data": 5}
        w.check()
        w.check()
        s.state["errors"]["total"] = 10
        w.check()
        assert w.sent.count(AlertKind.ERROR_BUDGET_HALF) == 1 and w.sent.count(AlertKind.ERROR_BUDGET_EXHAUSTED) == 1
        # The breaker trips.
        s.events(("breaker_trip", {"reason": "consecutive_losses", "value": 3, "until_ts": T0 + 3_600_000}))
        w.check()
        assert w.sent[-1] is AlertKind.BREAKER_TRIPPED
        # The daily summary at 07:00 UTC, once a day.
        s.state["equity"] = 10_003.4
        w.check()
        assert AlertKind.DAILY_SUMMARY not in w.sent
        wall.t += 61.0
        w.check()
        w.check()
        assert w.sent.count(AlertKind.DAILY_SUMMARY) == 1
        assert n.flush(5.0)
    finally:
        n.close()
    daily = next(a for a in sent if a.kind is AlertKind.DAILY_SUMMARY)
    assert daily.title == "Daily summary 2026-01-01 [live-test]"
    assert "trades closed today: 2" in daily.body and "+3.40" in daily.body
    opened = [a for a in sent if a.kind is AlertKind.TRADE_OPENED]
    assert "stop 63,800.0, target 64,600.0" in opened[0].body and opened[1].title == "Trade opened: short"
