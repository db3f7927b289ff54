"""``laptop-agents orders / positions / balance / flatten``: the real CLI in a
subprocess against the fake exchange on 127.0.0.1 -- tables and JSON that
match the exchange's own record, one line and a distinct exit code for each
failure (keys missing or refused, 5xx, timeouts), and a flatten that asks
first, refuses without a terminal, and says (exit 17) when something is left."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.private_models import OrderRequest
from laptop_agents.exit_codes import ExitCode
from laptop_agents.lock import WorkspaceLock
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT, FakeExchangeHandle
from tests.exchange.private_support import SYMBOL, private_client, trading_fake
from tests.foundation.test_cli_options import help_of, options_of
from tests.session.helpers import PROJECT_ROOT, session_env

KEYS = {"BITUNIX_API_KEY": DEFAULT_ACCOUNT.api_key, "BITUNIX_API_SECRET": DEFAULT_ACCOUNT.secret_key}


@pytest.fixture
def fake() -> Iterator[FakeExchangeHandle]:
    with trading_fake() as handle:
        yield handle


def env_for(ws: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in session_env(ws).items() if not k.startswith("BITUNIX_")}
    env.update(extra)
    return env


def cli(fake: FakeExchangeHandle, ws: Path, *args: str, keys: dict[str, str] | None = None,
        stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    env = env_for(ws, **(KEYS if keys is None else keys))
    return subprocess.run([sys.executable, "-m", "laptop_agents", *args, "--bitunix-rest-url", fake.rest_url],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=stdin)


def _tick(x: float) -> float:
    return round(round(x / 0.1) * 0.1, 1)


def setup_account(fake: FakeExchangeHandle, position_qty: float = 0.01, resting: int = 2) -> None:
    async def go() -> None:
        async with private_client(fake) as c:
            if position_qty:
                side = "BUY" if position_qty > 0 else "SELL"
                await c.place_order(OrderRequest.market(SYMBOL, side, abs(position_qty), client_id="open1"))
            last = (await c.rest.tickers([SYMBOL]))[0].last
            for i in range(resting):
                await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.001, _tick(last * (0.97 - i / 100)),
                                                       client_id=f"rest{i}"))

    asyncio.run(go())
    time.sleep(1.1)  # the fake's per-account 10/s window starts over for the CLI


def open_orders(fake: FakeExchangeHandle) -> list[dict[str, Any]]:
    return [o for o in fake.orders() if o["status"] in pp.OPEN_STATUSES]


def one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_orders_positions_and_balance_show_the_exchange(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    setup_account(fake, 0.01, 2)
    ws = tmp_path / "ws"
    orders = cli(fake, ws, "orders")
    assert orders.returncode == 0, orders.stderr
    header, *rows = orders.stdout.splitlines()
    assert header.split()[:4] == ["ORDER", "ID", "CLIENT", "ID"]
    assert sorted(r.split()[1] for r in rows) == ["rest0", "rest1"]
    as_json = cli(fake, ws, "orders", "--json")
    data = json.loads(as_json.stdout)
    exchange = {o["client_id"]: o for o in open_orders(fake)}
    assert data["symbol"] == SYMBOL
    assert {o["client_id"]: (o["order_id"], o["qty"], o["price"], o["status"]) for o in data["orders"]} == {
        cid: (o["order_id"], o["qty"], o["price"], o["status"]) for cid, o in exchange.items()}

    positions = cli(fake, ws, "positions")
    assert positions.returncode == 0, positions.stderr
    header, row = positions.stdout.splitlines()
    assert row.split()[:3] == [SYMBOL, "LONG", "0.01"]
    [pos] = json.loads(cli(fake, ws, "positions", "--json").stdout)["positions"]
    [fake_pos] = fake.positions()
    assert pos["qty"] == fake_pos["qty"] == 0.01 and pos["side"] == "LONG"
    assert pos["avg_open_price"] == pytest.approx(fake_pos["entry"])

    balance = cli(fake, ws, "balance")
    assert balance.returncode == 0, balance.stderr
    header, row = balance.stdout.splitlines()
    assert header.split() == ["COIN", "AVAILABLE", "FROZEN", "MARGIN", "UPNL", "EQUITY"] and row.startswith("USDT")
    bal = json.loads(cli(fake, ws, "balance", "--json").stdout)
    figures = fake.balances()[DEFAULT_ACCOUNT.uid]
    assert bal["available"] == pytest.approx(figures["available"]) and bal["margin"] > 0 and bal["frozen"] > 0
    written = sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file())
    assert written == ["logs/system.jsonl"]  # read-only views: nothing but the log


def test_empty_account_says_so(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli(fake, ws, "orders", "--symbol", "btc/usdt").stdout.strip() == "no open orders on BTCUSDT"
    assert cli(fake, ws, "positions").stdout.strip() == "no open position on BTCUSDT"


@pytest.mark.parametrize("command", [["orders"], ["positions"], ["balance"], ["flatten", "--yes"]])
def test_missing_keys_are_one_line_and_exit_12(fake: FakeExchangeHandle, tmp_path: Path,
                                               command: list[str]) -> None:
    out = cli(fake, tmp_path / "ws", *command, keys={"BITUNIX_API_KEY": DEFAULT_ACCOUNT.api_key})
    assert out.returncode == ExitCode.LIVE_NOT_ALLOWED
    line = one_line(out.stderr)
    assert line.startswith(f"{command[0]}: BITUNIX_API_SECRET not set") and out.stdout == ""
    assert fake.stats()["rest_requests"] == {} or not any(
        p.startswith("/api/v1/futures/trade") or p.startswith("/api/v1/futures/position")
        for p in fake.stats()["rest_requests"])


def test_flatten_without_keys_fails_before_asking(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    out = cli(fake, tmp_path / "ws", "flatten", keys={})
    assert out.returncode == ExitCode.LIVE_NOT_ALLOWED
    assert "BITUNIX_API_KEY and BITUNIX_API_SECRET not set" in one_line(out.stderr)


def test_keys_the_exchange_refuses_are_exit_12(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    wrong = {"BITUNIX_API_KEY": DEFAULT_ACCOUNT.api_key, "BITUNIX_API_SECRET": "notTheSecret123"}
    out = cli(fake, tmp_path / "ws", "balance", keys=wrong)
    assert out.returncode == ExitCode.LIVE_NOT_ALLOWED
    line = one_line(out.stderr)
    assert line.startswith("balance: the exchange refused the API keys") and "code" in line


def test_a_failing_exchange_is_exit_6(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    fake.inject("http_status", status=503, count=1000, path=pp.PATH_PENDING_POSITIONS)
    out = cli(fake, tmp_path / "ws", "positions")
    assert out.returncode == ExitCode.MARKET_DATA_ERRORS
    line = one_line([ln for ln in out.stderr.splitlines() if "retry" not in ln][-1])
    assert line.startswith(f"positions: exchange error at {fake.rest_url}") and "HTTP 503" in line


def test_a_timeout_is_exit_6_and_a_bad_timeout_exit_2(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    fake.inject("slow", seconds=1.5, count=10, path=pp.PATH_ACCOUNT)
    out = cli(fake, tmp_path / "ws", "balance", "--timeout", "0.3")
    assert out.returncode == ExitCode.MARKET_DATA_ERRORS
    assert "balance: exchange error" in out.stderr.splitlines()[-1]
    assert "Traceback" not in out.stderr
    bad = cli(fake, tmp_path / "ws", "balance", "--timeout", "0")
    assert bad.returncode == ExitCode.CONFIG_ERROR
    assert "bad --timeout 0: allowed is 0 < SEC <= 300" in one_line(bad.stderr)


def test_flatten_yes_closes_everything(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    setup_account(fake, -0.02, 2)
    out = cli(fake, tmp_path / "ws", "flatten", "--yes")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "flatten BTCUSDT: flat (2 order(s) cancelled, 1 closing order(s) placed)"
    assert not open_orders(fake) and not [p for p in fake.positions() if p["qty"]]
    closes = [e for e in fake.order_log() if e["kind"] == "accepted" and e["reduce_only"]]
    assert [(e["side"], e["qty"], e["order_type"]) for e in closes] == [("BUY", 0.02, "MARKET")]
    again = cli(fake, tmp_path / "ws", "flatten", "--yes", "--json")
    assert again.returncode == 0
    data = json.loads(again.stdout)
    assert data["done"] and data["closing"] == [] and data["summary"].endswith("flat (0 order(s) cancelled, "
                                                                               "0 closing order(s) placed)")


def test_flatten_refuses_without_a_terminal_and_without_yes(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    setup_account(fake, 0.01, 1)
    before = fake.stats()["rest_requests"]
    out = cli(fake, tmp_path / "ws", "flatten")
    assert out.returncode == ExitCode.CONFIG_ERROR
    assert "no terminal to confirm on; pass --yes" in one_line(out.stderr)
    assert fake.stats()["rest_requests"] == before  # nothing read, nothing sent
    assert len(open_orders(fake)) == 1 and [p["qty"] for p in fake.positions()] == [0.01]


def test_flatten_incomplete_is_exit_17_and_names_what_is_left(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    setup_account(fake, 0.01, 1)
    fake.inject("reject_order", code=20003, count=1000)
    out = cli(fake, tmp_path / "ws", "flatten", "--yes", "--json")
    assert out.returncode == ExitCode.FLATTEN_INCOMPLETE == 17
    data = json.loads(out.stdout)
    assert not data["done"] and [p["qty"] for p in data["left_positions"]] == [0.01]
    assert len(data["cancelled"]) == 1 and {c["outcome"] for c in data["closing"]} == {"refused"}
    last = out.stderr.splitlines()[-1]
    assert last.startswith("flatten BTCUSDT: INCOMPLETE") and "LONG position 0.01" in last
    assert [p["qty"] for p in fake.positions()] == [0.01]


def _cli_on_a_terminal(fake: FakeExchangeHandle, ws: Path, answer: str) -> tuple[int, str]:
    """``flatten`` with its stdin on a pseudo-terminal; ``answer`` typed once the question shows."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "laptop_agents", "flatten", "--bitunix-rest-url", fake.rest_url],
                            cwd=PROJECT_ROOT, env=env_for(ws, **KEYS), stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    os.close(slave)
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in out and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            out += os.read(proc.stdout.fileno(), 65536)
    os.write(master, answer.encode() + b"\n")
    rest, _ = proc.communicate(timeout=60)
    os.close(master)
    return proc.returncode, (out + rest).decode()


def test_flatten_asks_on_a_terminal(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    setup_account(fake, 0.01, 1)
    code, text = _cli_on_a_terminal(fake, tmp_path / "ws", "n")
    assert code == 0 and "[y/N]" in text and "rest0" in text and "LONG" in text  # it showed what is open
    assert "not confirmed; nothing was sent" in text
    assert len(open_orders(fake)) == 1 and [p["qty"] for p in fake.positions()] == [0.01]
    assert pp.PATH_CANCEL_ALL_ORDERS not in fake.stats()["rest_requests"]
    code, text = _cli_on_a_terminal(fake, tmp_path / "ws", "y")
    assert code == 0, text
    assert "flatten BTCUSDT: flat (1 order(s) cancelled, 1 closing order(s) placed)" in text
    assert not open_orders(fake) and not [p for p in fake.positions() if p["qty"]]


@pytest.mark.parametrize(
    ("command", "accepts"),
    [
        ("orders", ["--symbol", "--bitunix-rest-url", "--timeout", "--json"]),
        ("positions", ["--symbol", "--bitunix-rest-url", "--timeout", "--json"]),
        ("balance", ["--bitunix-rest-url", "--timeout", "--json"]),
        ("flatten", ["--symbol", "--bitunix-rest-url", "--timeout", "--json", "--yes"]),
    ],
)
def test_each_account_command_takes_only_its_flags(command: str, accepts: list[str]) -> None:
    common = {"--workspace", "--profile", "--log-level", "--help"}
    assert options_of(command) - common == set(accepts)
    assert "--yes" in help_of("flatten")


def test_flatten_warns_when_a_session_holds_the_workspace(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    setup_account(fake, 0.01, 0)
    ws = tmp_path / "ws"
    ws.mkdir()
    guard = WorkspaceLock(ws / "lock", what="session")
    guard.acquire()
    try:
        out = cli(fake, ws, "flatten", "--yes", "--json")
    finally:
        guard.release()
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["done"]  # stdout stays one JSON document
    warning = [ln for ln in out.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and f"session pid {os.getpid()}" in warning[0] and "stop --flatten" in warning[0]
