"""The exchange account from the command line: ``laptop-agents orders``,
``positions``, ``balance`` (read-only views) and ``flatten`` (cancel every
open order of the symbol and close its position, verified on the exchange).

Why here and not in the session: these are what an operator reaches for when
the bot is stopped, hung or misbehaving, so they talk to the exchange
directly with the keys from the environment and need nothing from the
workspace (they work on a read-only one). Every failure is one line and a
distinct exit code: keys missing (12, like `run`'s live gate), keys refused
by the exchange (12), the exchange unreachable or failing (6, like
`fetch-candles`), a flatten that left something open (17). Output is a
compact table, or JSON with ``--json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from laptop_agents.context import CommandContext
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.exchange.credentials import ENV_API_KEY, ENV_API_SECRET, ApiCredentials, CredentialsError
from laptop_agents.exchange.errors import AuthError, ExchangeError
from laptop_agents.exchange.flatten import FlattenResult, flatten_all
from laptop_agents.exchange.private_models import Balance, Order, Position, wire_number
from laptop_agents.exchange.private_rest import BitunixPrivateClient, PrivateRestOptions
from laptop_agents.exchange.rest import RestOptions
from laptop_agents.exit_codes import ExitCode
from laptop_agents.logs import scrub
from laptop_agents.ops.commands import _running

T = TypeVar("T")


class _Stop(LaptopAgentsError):
    """A one-line failure with its exit code (raised inside, printed once at the edge)."""

    def __init__(self, code: int, line: str) -> None:
        super().__init__(line)
        self.code = code
        self.line = line


def _credentials(command: str) -> ApiCredentials:
    missing = [name for name in (ENV_API_KEY, ENV_API_SECRET) if not os.environ.get(name, "").strip()]
    if missing:
        raise _Stop(ExitCode.LIVE_NOT_ALLOWED, f"{command}: {' and '.join(missing)} not set: the exchange account "
                    f"needs {ENV_API_KEY} and {ENV_API_SECRET} in the environment")
    try:
        return ApiCredentials.from_env()
    except CredentialsError as exc:  # present but unusable (whitespace): names the variable, never the value
        raise _Stop(ExitCode.CONFIG_ERROR, f"{command}: {exc}; fix {ENV_API_KEY} / {ENV_API_SECRET}") from None


def _client(ctx: CommandContext, credentials: ApiCredentials) -> BitunixPrivateClient:
    timeout = getattr(ctx.args, "timeout", None)
    options = PrivateRestOptions()
    if timeout is not None:
        if not 0 < timeout <= 300:
            raise _Stop(ExitCode.CONFIG_ERROR, f"{ctx.command}: bad --timeout {timeout:g}: allowed is 0 < SEC <= 300")
        options = PrivateRestOptions(rest=RestOptions(timeout_s=float(timeout)))
    return BitunixPrivateClient(credentials, ctx.config.trading.bitunix_rest_url, options=options)


def _run(ctx: CommandContext, work: Callable[[BitunixPrivateClient], Awaitable[T]]) -> T:
    """``work`` with a client, every exchange failure as one line and its exit code."""
    credentials = _credentials(ctx.command)
    client = _client(ctx, credentials)

    async def go() -> T:
        async with client:
            return await work(client)

    url = ctx.config.trading.bitunix_rest_url
    try:
        return asyncio.run(go())
    except AuthError as exc:
        raise _Stop(ExitCode.LIVE_NOT_ALLOWED, f"{ctx.command}: the exchange refused the API keys ({exc}); "
                    f"check {ENV_API_KEY}, {ENV_API_SECRET} and the clock") from None
    except ExchangeError as exc:
        raise _Stop(ExitCode.MARKET_DATA_ERRORS, f"{ctx.command}: exchange error at {url}: {exc}") from None


def _guarded(ctx: CommandContext, body: Callable[[], int]) -> int:
    try:
        return body()
    except _Stop as stop:
        print(scrub(stop.line), file=sys.stderr)
        ctx.log.warning("%s failed", ctx.command, extra={"fields": {"exit_code": int(stop.code)}, "console": False})
        return stop.code


# -- output -------------------------------------------------------------------------------
def _num(value: float | None) -> str:
    """Plain decimals, float noise rounded off (10001.6429898, not 10001.642989799999)."""
    return "-" if value is None else wire_number(round(value, 8))


def _time(ms: int | None) -> str:
    return "-" if ms is None else ms_to_iso(ms, "seconds")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart: readable, greppable, no box drawing."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in (list(headers), *rows)]
    return "\n".join(lines)


def _order_dict(o: Order) -> dict[str, Any]:
    return o.model_dump(mode="json")


def _order_rows(orders: Sequence[Order]) -> list[list[str]]:
    return [[o.order_id, o.client_id or "-", o.side.value, o.order_type.value, _num(o.qty), _num(o.filled_qty),
             _num(o.price), o.status, "yes" if o.reduce_only else "no", _time(o.ctime)] for o in orders]


ORDER_HEADERS = ("ORDER ID", "CLIENT ID", "SIDE", "TYPE", "QTY", "FILLED", "PRICE", "STATUS", "REDUCE", "CREATED")
POSITION_HEADERS = ("SYMBOL", "SIDE", "QTY", "ENTRY", "UPNL", "LEVERAGE", "MARGIN", "LIQ PRICE")


def _position_rows(positions: Sequence[Position]) -> list[list[str]]:
    return [[p.symbol, p.side, _num(p.qty), _num(p.entry_price), _num(p.unrealized_pnl),
             "-" if p.leverage is None else f"{p.leverage}x", p.margin_mode or "-", _num(p.liq_price)]
            for p in positions]


def _emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def _wants_json(ctx: CommandContext) -> bool:
    return bool(getattr(ctx.args, "json", False))


# -- commands -----------------------------------------------------------------------------
def cmd_orders(ctx: CommandContext) -> int:
    """The symbol's open orders on the exchange."""
    symbol = ctx.config.trading.symbol

    def body() -> int:
        orders = _run(ctx, lambda c: c.open_orders(symbol))
        if _wants_json(ctx):
            _emit_json({"symbol": symbol, "orders": [_order_dict(o) for o in orders]})
        elif not orders:
            print(f"no open orders on {symbol}")
        else:
            print(table(ORDER_HEADERS, _order_rows(orders)))
        return ExitCode.OK

    return _guarded(ctx, body)


def cmd_positions(ctx: CommandContext) -> int:
    """The symbol's open positions on the exchange."""
    symbol = ctx.config.trading.symbol

    def body() -> int:
        positions = _run(ctx, lambda c: c.positions(symbol))
        if _wants_json(ctx):
            _emit_json({"symbol": symbol, "positions": [p.model_dump(mode="json") for p in positions]})
        elif not positions:
            print(f"no open position on {symbol}")
        else:
            print(table(POSITION_HEADERS, _position_rows(positions)))
        return ExitCode.OK

    return _guarded(ctx, body)


def cmd_balance(ctx: CommandContext) -> int:
    """The futures account: available, frozen, margin, unrealized PnL."""

    def body() -> int:
        bal: Balance = _run(ctx, lambda c: c.balance())
        if _wants_json(ctx):
            _emit_json({**bal.model_dump(mode="json"), "equity_estimate": bal.equity_estimate})
        else:
            upnl = bal.cross_unrealized_pnl + bal.isolation_unrealized_pnl
            print(table(("COIN", "AVAILABLE", "FROZEN", "MARGIN", "UPNL", "EQUITY"),
                        [[bal.margin_coin, _num(bal.available), _num(bal.frozen), _num(bal.margin), _num(upnl),
                          _num(bal.equity_estimate)]]))
        return ExitCode.OK

    return _guarded(ctx, body)


def flatten_dict(result: FlattenResult) -> dict[str, Any]:
    """The JSON form of a flatten (``--json``)."""
    return {
        "symbol": result.symbol, "done": result.done, "verified": result.verified,
        "auth_refused": result.auth_refused,
        "cancelled": [_order_dict(o) for o in result.cancelled],
        "closing": [{"client_id": c.client_id, "side": c.side, "qty": c.qty, "outcome": c.outcome,
                     "order_id": c.order_id, "detail": c.detail} for c in result.closing],
        "left_orders": [_order_dict(o) for o in result.left_orders],
        "left_positions": [p.model_dump(mode="json") for p in result.left_positions],
        "unresolved": list(result.unresolved), "problems": list(result.problems),
        "summary": result.describe(),
    }


def _confirm(ctx: CommandContext, symbol: str) -> bool:
    """Show what is open, then ask. Only on a terminal (checked by the caller);
    with ``--json`` the question goes to stderr so stdout stays one JSON document."""
    out = sys.stderr if _wants_json(ctx) else sys.stdout
    orders, positions = _run(ctx, lambda c: _read_open(c, symbol))
    if not orders and not positions:
        print(f"nothing open on {symbol} at {ctx.config.trading.bitunix_rest_url}", file=out)
    for headers, rows in ((ORDER_HEADERS, _order_rows(orders)), (POSITION_HEADERS, _position_rows(positions))):
        if rows:
            print(table(headers, rows), file=out)
    print(f"Cancel every open order on {symbol} and close every position with a market order "
          f"(account at {ctx.config.trading.bitunix_rest_url})? [y/N] ", end="", file=out, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


async def _read_open(client: BitunixPrivateClient, symbol: str) -> tuple[list[Order], list[Position]]:
    return await client.open_orders(symbol), await client.positions(symbol)


def cmd_flatten(ctx: CommandContext) -> int:
    """Cancel all, close all, verify: exit 0 when flat, 17 when something is left."""
    symbol = ctx.config.trading.symbol
    yes = bool(getattr(ctx.args, "yes", False))

    def body() -> int:
        _credentials(ctx.command)  # before any prompt: no keys, no question
        if not yes and not sys.stdin.isatty():
            raise _Stop(ExitCode.CONFIG_ERROR, "flatten: no terminal to confirm on; pass --yes to flatten "
                        "without the question")
        for running in _running(ctx):
            print(f"warning: a {running} uses workspace {ctx.workspace.root}: it will see this flatten as "
                  f"a change by hand (`laptop-agents stop --flatten` lets the session do it)", file=sys.stderr)
        if not yes:
            if not _confirm(ctx, symbol):
                print("flatten: not confirmed; nothing was sent", file=sys.stderr if _wants_json(ctx) else sys.stdout)
                return ExitCode.OK
        result = _run(ctx, lambda c: flatten_all(c, symbol))
        if result.auth_refused:
            raise _Stop(ExitCode.LIVE_NOT_ALLOWED, f"flatten: the exchange refused the API keys (check "
                        f"{ENV_API_KEY}, {ENV_API_SECRET} and the clock): {result.describe()}")
        ctx.log.info("flatten", extra={"fields": {"symbol": symbol, "done": result.done,
                                                  "left": len(result.left)}, "console": False})
        if _wants_json(ctx):
            _emit_json(flatten_dict(result))
        elif result.closing:
            print(table(("CLIENT ID", "SIDE", "QTY", "OUTCOME", "ORDER ID"),
                        [[c.client_id, c.side, _num(c.qty), c.outcome, c.order_id or "-"] for c in result.closing]))
        if not result.done:
            print(scrub(result.describe()), file=sys.stderr)
            return ExitCode.FLATTEN_INCOMPLETE
        if not _wants_json(ctx):
            print(result.describe())
        return ExitCode.OK

    return _guarded(ctx, body)
