"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by
Playwright's python package -- ``make test`` installs the browser when missing):
open the dashboard of a real running mock session, watch the status and the
charts follow the candles, press stop, confirm, and see the session end with
``kill_switch``; then open its report.

``LA_UPDATE_SCREENSHOTS=1`` also writes ``docs/dashboard-screenshot.png``
(the report's, ``docs/report-screenshot.png``, is of a real-data backtest).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.exit_codes import ExitCode
from tests.session.helpers import PROJECT_ROOT, start, summary

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make chromium installs it)"),
]


def _browser(pw: Any, profile: Path) -> Any:
    """A fresh profile (--user-data-dir) per test, Debian's binary, the flags of a sandboxed CI."""
    return pw.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
        viewport={"width": 1400, "height": 1100}, device_scale_factor=1)


def _keep(page: Any, name: str, tmp: Path, *, docs: bool = False, **kw: Any) -> None:
    shot = tmp / name
    page.screenshot(path=str(shot), **kw)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if docs and os.environ.get("LA_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, PROJECT_ROOT / "docs" / name)


def test_dashboard_follows_a_live_session_and_its_stop_button_ends_it(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ws = tmp_path / "ws"
    # The roundtrip strategy trades every two candles: fills and trades on the chart.
    sess = start(ws, "--async", "--source", "mock", "--speed", "300", "--warmup-bars", "60", "--duration", "100000",
                 "--dashboard", "--dashboard-port", "0", "--run-id", "browser", harness="scripted:roundtrip",
                 env={"LA_RISK__BREAKER_CONSECUTIVE_LOSSES": "1000"})
    try:
        assert sess.proc.stdout is not None
        url = next(line.split()[1] for line in iter(sess.proc.stdout.readline, "") if line.startswith("dashboard: "))
        with sync_playwright() as pw:
            ctx = _browser(pw, tmp_path / "profile")
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("() => window.__dashboard && window.__dashboard.status.status === 'running'",
                                   timeout=30_000)
            assert "running" in page.inner_text("#badge") and page.inner_text("#conn") == "live"

            def candles_on_chart() -> int:
                return int(page.evaluate(
                    "() => { const d = document.getElementById('price-chart').data; return d ? d[0].x.length : 0 }"))

            page.wait_for_function("() => document.getElementById('price-chart').data", timeout=30_000)
            first, first_status = candles_on_chart(), page.inner_text("#c-session-sub")
            page.wait_for_function(
                f"() => document.getElementById('price-chart').data[0].x.length >= {first} + 5", timeout=30_000)
            assert candles_on_chart() >= first + 5
            page.wait_for_function("() => document.getElementById('equity-chart').data[0].x.length >= 5")
            assert page.inner_text("#c-session-sub") != first_status  # the candle count moved
            assert page.inner_text("#c-price") not in ("", "–")
            page.wait_for_function("() => window.__dashboard.streams.trades && window.__dashboard.streams.trades.length >= 2",
                                   timeout=30_000)
            page.wait_for_function("() => document.getElementById('price-chart').data[0].x.length >= 120",
                                   timeout=60_000)
            assert page.locator("#t-trades tbody tr").count() >= 2
            _keep(page, "dashboard-screenshot.png", tmp_path, docs=True, full_page=True)

            page.click("#btn-stop")
            assert page.locator("#confirm").is_visible()
            assert "position is kept" in page.inner_text("#confirm-text")
            page.click("#confirm-ok")
            page.wait_for_function("() => document.getElementById('badge').textContent === 'stopped (kill_switch)'",
                                   timeout=30_000)
            assert page.locator("#btn-stop").is_disabled()
            assert errors == [], errors
            code, _, err = sess.wait(30)
            assert code == ExitCode.OK, err
            s = summary(ws)
            assert s["reason"] == "kill_switch" and s["reason_detail"] == "dashboard stop (keep the position)"

            report = ws / "runs" / "browser" / "report.html"
            rp = ctx.new_page()
            rp.goto(report.as_uri())
            rp.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 1", timeout=30_000)
            _keep(rp, "session-report-screenshot.png", tmp_path, full_page=False)
            ctx.close()
    finally:
        sess.kill()
