"""The live terminal view: a rich panel on a terminal, plain lines elsewhere."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from rich.console import Console
from rich.logging import RichHandler

from laptop_agents.console.terminal import TerminalView, plain_line, summarize
from tests.console.fakes import FakeSession


def _session() -> FakeSession:
    s = FakeSession()
    c = s.candle(64_123.4)
    s.events(("decision", {"action": "enter", "reason": "sweep"}))
    s.state["position"] = {"qty": 0.01, "side": "long", "entry_price": 64_000.0, "entry_ts": c.ts,
                           "stop": 63_800.0, "target": 64_600.0, "unrealized": 1.23}
    s.state["errors"] = {**s.state["errors"], "total": 2}
    s.state["equity"] = 10_001.23
    return s


def test_fields_and_plain_line() -> None:
    s = _session()
    f = summarize(s.view.status(), s.view.recent("decisions").items[-1], 64_123.4)
    assert f == {"status": "running", "price": "64,123.4", "position": "long 0.01 @ 64,000.0", "upnl": "+1.23",
                 "equity": "10,001.23", "decision": "enter sweep", "age": "0.4s", "errors": "2/10"}
    assert plain_line(f) == ("[running] price 64,123.4 | long 0.01 @ 64,000.0 | uPnL +1.23 | equity 10,001.23 | "
                             "last enter sweep | data 0.4s | errors 2/10")
    empty = summarize({}, None, None)
    assert empty["position"] == "flat" and empty["price"] == "–" and empty["decision"] == "–"


def test_plain_lines_when_not_a_terminal() -> None:
    s = _session()
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    clock = [0.0]
    tv = TerminalView(s.view, console=console, plain_every_s=10.0, monotonic=lambda: clock[0])
    assert tv.live is False
    tv.tick()
    s.state["market_data_age_s"] = 0.9  # data age alone is no news
    clock[0] = 20.0
    tv.tick()
    s.state["equity"] = 10_050.0
    clock[0] = 25.0
    tv.tick()  # changed, but too soon
    clock[0] = 31.0
    tv.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b[" not in out.getvalue()
    assert "equity 10,001.23" in lines[0] and "equity 10,050.00" in lines[1]


def test_live_panel_on_a_terminal_with_log_lines_above(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _session()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system="truecolor")
    # The session's rich log handler (as logs.setup_logging builds it): the view finds its console.
    handler = RichHandler(console=console, show_path=False)
    root = logging.getLogger("laptop_agents")
    monkeypatch.setattr(root, "handlers", [handler])  # whatever other tests configured, only this one

    async def main() -> TerminalView:
        tv = TerminalView(s.view, refresh_s=0.01)
        assert tv.console is console
        tv.start()
        assert tv.live is True
        await asyncio.sleep(0.05)
        logging.getLogger("laptop_agents.session.runner").warning("market data error (1 in a row)")
        print("a plain print while the panel is live")
        s.state["equity"] = 10_077.0
        await asyncio.sleep(0.05)
        await tv.stop()
        return tv

    tv = asyncio.run(main())
    text = out.getvalue()
    assert tv.renders >= 2 and tv.failures == 0
    assert "btc-laptop-agents" in text and "64,123.4" in text and "enter sweep" in text and "10,077.00" in text
    assert "market data error" in text and "a plain print while the panel is live" in text
    # Both lines were printed above the panel: the last thing on screen is the panel itself.
    tail = text.rsplit("a plain print while the panel is live", 1)[1]
    assert "btc-laptop-agents" in tail and "10,077.00" in tail
    assert "\x1b[" in text  # a real terminal rendering (cursor movement, colours)


def test_a_failing_view_never_raises_out_of_the_terminal_view() -> None:
    s = _session()

    def boom() -> dict[str, object]:
        raise RuntimeError("view broke")

    s.view.status = boom  # type: ignore[method-assign]
    tv = TerminalView(s.view, console=Console(file=io.StringIO(), force_terminal=False))
    tv.tick()
    tv.tick()
    assert tv.failures == 2
