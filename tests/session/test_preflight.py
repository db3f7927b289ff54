"""Preflight checks against a real (tiny) HTTP server on 127.0.0.1 and real files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.config import AppConfig, load_config
from laptop_agents.exit_codes import ExitCode
from laptop_agents.lock import WorkspaceLock
from laptop_agents.session.preflight import CheckResult, print_results, run_preflight
from laptop_agents.workspace import Workspace
from tests.session.helpers import PROJECT_ROOT, session_env


class _Exchange:
    """Answers the trading-pairs probe; skew and reply code are adjustable."""

    def __init__(self) -> None:
        self.skew_s = 0.0
        self.code = 0
        self.status = 200
        self.symbols = ["BTCUSDT"]
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                body = json.dumps({"code": outer.code, "msg": "ok" if outer.code == 0 else "market not found",
                                   "data": [{"symbol": s, "base": "BTC", "quote": "USDT", "minTradeVolume": "0.0001",
                                             "basePrecision": 4, "quotePrecision": 1} for s in outer.symbols]}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def send_header(self, keyword: str, value: str) -> None:
                if keyword.lower() == "date":
                    value = formatdate(time.time() + outer.skew_s, usegmt=True)
                super().send_header(keyword, value)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exchange() -> Iterator[_Exchange]:
    ex = _Exchange()
    yield ex
    ex.close()


def _cfg(**trading: Any) -> AppConfig:
    overrides = {f"trading.{k}": v for k, v in trading.items()}
    return load_config("paper", overrides, environ={}).config


def _by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_mock_paper_passes_and_skips_exchange_checks(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    res = _by_name(run_preflight(_cfg(), ws, environ={}))
    assert [r.status for r in res.values()].count("FAIL") == 0, res
    assert res["exchange REST"].status == "SKIP" and res["clock skew"].status == "SKIP"
    assert res["API keys"].status == "SKIP"
    assert res["workspace"].status == "PASS" and str(ws.root) in res["workspace"].reason
    assert res["single instance"].status == "PASS"


def test_bitunix_source_probes_the_exchange(tmp_path: Path, exchange: _Exchange) -> None:
    ws = Workspace(tmp_path / "ws")
    cfg = _cfg(source="bitunix", bitunix_rest_url=exchange.url)
    res = _by_name(run_preflight(cfg, ws, environ={}))
    assert res["exchange REST"].status == "PASS", res["exchange REST"]
    assert res["clock skew"].status == "PASS", res["clock skew"]
    assert exchange.paths and exchange.paths[0].startswith("/api/v1/futures/market/trading_pairs?symbols=BTCUSDT")


def test_clock_skew_beyond_the_bound_fails(tmp_path: Path, exchange: _Exchange) -> None:
    exchange.skew_s = 30.0
    cfg = _cfg(source="bitunix", bitunix_rest_url=exchange.url)
    res = _by_name(run_preflight(cfg, Workspace(tmp_path / "ws"), environ={}))
    assert res["clock skew"].status == "FAIL" and "off the exchange" in res["clock skew"].reason
    assert res["exchange REST"].status == "PASS"


def test_error_envelope_and_http_errors_fail(tmp_path: Path, exchange: _Exchange) -> None:
    cfg = _cfg(source="bitunix", bitunix_rest_url=exchange.url)
    exchange.code = 20001
    res = _by_name(run_preflight(cfg, Workspace(tmp_path / "a"), environ={}))
    assert res["exchange REST"].status == "FAIL" and "code 20001" in res["exchange REST"].reason
    exchange.code, exchange.status = 0, 503
    res = _by_name(run_preflight(cfg, Workspace(tmp_path / "b"), environ={}))
    assert res["exchange REST"].status == "FAIL" and "HTTP 503" in res["exchange REST"].reason


def test_a_symbol_the_exchange_does_not_list_fails(tmp_path: Path, exchange: _Exchange) -> None:
    exchange.symbols = ["ETHUSDT"]
    cfg = _cfg(source="bitunix", bitunix_rest_url=exchange.url)
    res = _by_name(run_preflight(cfg, Workspace(tmp_path / "ws"), environ={}))
    assert res["exchange REST"].status == "FAIL" and "BTCUSDT is not listed" in res["exchange REST"].reason
    assert res["clock skew"].status == "PASS"  # the exchange answered: its clock can still be compared


def test_unreachable_exchange_fails(tmp_path: Path, free_port: int) -> None:
    cfg = _cfg(source="bitunix", bitunix_rest_url=f"http://127.0.0.1:{free_port}")
    res = _by_name(run_preflight(cfg, Workspace(tmp_path / "ws"), environ={}, http_timeout_s=2.0))
    assert res["exchange REST"].status == "FAIL" and "unreachable" in res["exchange REST"].reason
    assert res["clock skew"].status == "FAIL"


def test_live_needs_the_switch_and_the_keys(tmp_path: Path, exchange: _Exchange) -> None:
    ws = Workspace(tmp_path / "ws")
    cfg = _cfg(source="bitunix", execution_mode="live", bitunix_rest_url=exchange.url)
    res = _by_name(run_preflight(cfg, ws, environ={}))
    assert res["config"].status == "FAIL" and "--enable-live" in res["config"].reason
    assert res["API keys"].status == "FAIL" and "BITUNIX_API_KEY" in res["API keys"].reason
    cfg = _cfg(source="bitunix", execution_mode="live", live_enabled=True, bitunix_rest_url=exchange.url)
    env = {"BITUNIX_API_KEY": "k" * 16, "BITUNIX_API_SECRET": "s" * 16}
    res = _by_name(run_preflight(cfg, ws, environ=env))
    assert res["config"].status == "PASS" and res["API keys"].status == "PASS"
    assert "k" * 16 not in res["API keys"].reason


def test_replay_without_file_fails(tmp_path: Path) -> None:
    res = _by_name(run_preflight(_cfg(source="replay"), Workspace(tmp_path / "ws"), environ={}))
    assert res["config"].status == "FAIL" and "--replay-file" in res["config"].reason


def test_other_instance_pending_stop_and_disk_space(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    lock = WorkspaceLock(ws.lock)
    lock.acquire()
    try:
        res = _by_name(run_preflight(_cfg(), ws, environ={}))
        assert res["single instance"].status == "FAIL" and "another session" in res["single instance"].reason
    finally:
        lock.release()
    ws.kill_file.write_text("stop")
    res = _by_name(run_preflight(_cfg(), ws, environ={}, min_free_mb=1e12))
    assert res["kill switch"].status == "FAIL" and res["disk space"].status == "FAIL"
    assert res["single instance"].status == "PASS"


def test_corrupt_state_store_fails(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.state_db.write_bytes(b"this is not sqlite" * 100)
    res = _by_name(run_preflight(_cfg(), ws, environ={}))
    assert res["state store"].status == "FAIL"
    assert ws.state_db.read_bytes().startswith(b"this is not sqlite")  # never modified


def test_unwritable_workspace_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _by_name(run_preflight(_cfg(), Workspace(blocker / "ws"), environ={}))
    assert res["workspace"].status == "FAIL"


def test_print_results_verdict() -> None:
    lines: list[str] = []
    ok = print_results([CheckResult("a", "PASS", "fine"), CheckResult("b", "FAIL", "broken")], lines.append)
    assert not ok and lines[0].startswith("PASS  a") and lines[1].startswith("FAIL  b")
    assert lines[-1] == "preflight: FAILED (b)"


def test_preflight_command_exit_codes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "laptop_agents", "preflight", "--workspace", str(ws)]
    ok = subprocess.run(cmd, cwd=PROJECT_ROOT, env=session_env(ws), capture_output=True, text=True, timeout=60)
    assert ok.returncode == ExitCode.OK, ok.stderr
    assert "PASS  config" in ok.stdout and "all checks passed" in ok.stdout
    (ws / "kill.txt").write_text("stop")
    bad = subprocess.run(cmd, cwd=PROJECT_ROOT, env=session_env(ws), capture_output=True, text=True, timeout=60)
    assert bad.returncode == ExitCode.PREFLIGHT_FAILED
    assert "FAIL  kill switch" in bad.stdout
