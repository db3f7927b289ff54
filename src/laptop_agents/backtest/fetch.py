"""``laptop-agents fetch-candles``: Bitunix REST kline history into a candle file.

Bitunix returns at most 200 klines per request, newest first, the newest of an
open-ended query still forming. So history is fetched in forward windows of
exactly 200 intervals (``startTime``..``endTime``), each answered by one page;
only candles that are certainly closed are kept (the REST client's rule).

Resumable: when ``--out`` exists, it is loaded (with the usual validation) and
fetching continues after its last candle; progress is checkpointed into the
file every few pages by an atomic rewrite (temp file + rename), so an
interrupted fetch leaves a complete, valid file to resume from. Funding history
is not offered by the Bitunix API, so the file has no funding column (use
``backtest --funding-rate``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from laptop_agents.context import CommandContext
from laptop_agents.domain.errors import UsageError
from laptop_agents.domain.isotime import iso_to_ms, ms_to_iso
from laptop_agents.domain.models import Candle
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.exchange.errors import ExchangeError
from laptop_agents.exchange.rest import BitunixRestClient, closed_candles_of
from laptop_agents.exit_codes import ExitCode
from laptop_agents.logs import scrub
from laptop_agents.sources.candle_files import CandleFileError, load_candles, write_candles
from laptop_agents.wallclock import now_ms

PAGE_BARS = 200
CHECKPOINT_PAGES = 20


class FetchArgError(UsageError):
    """A bad --start/--end/--days/--out; one line."""


def parse_time_ms(text: str, flag: str) -> int:
    """Epoch milliseconds (digits) or ISO 8601 (naive = UTC) -> UTC ms."""
    raw = text.strip()
    if raw.isdigit():
        return int(raw)
    try:
        return iso_to_ms(raw)
    except ValueError:
        raise FetchArgError(f"bad {flag} {text!r}: use an ISO date/time (2024-01-31, 2024-01-31T12:00Z) "
                            "or epoch milliseconds") from None


async def fetch_range(
    client: BitunixRestClient,
    symbol: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    *,
    on_checkpoint: Callable[[list[Candle]], None] | None = None,
    checkpoint_pages: int = CHECKPOINT_PAGES,
) -> list[Candle]:
    """Closed candles with open time in ``[start_ms, end_ms]``, oldest first,
    fetched in forward 200-interval windows. ``on_checkpoint`` receives the
    candles so far every ``checkpoint_pages`` pages."""
    iv = interval_ms(interval)
    start = -(-start_ms // iv) * iv  # the first open time at or after start_ms
    got: dict[int, Candle] = {}
    pages = 0
    w0 = start
    while w0 <= end_ms:
        w1 = min(w0 + PAGE_BARS * iv - 1, end_ms)
        page = await client.kline_page(symbol, interval, start_ms=w0, end_ms=w1, limit=PAGE_BARS)
        for c in closed_candles_of(page, iv):
            if w0 <= c.ts <= w1:
                got.setdefault(c.ts, c)
        pages += 1
        if on_checkpoint is not None and pages % checkpoint_pages == 0:
            on_checkpoint(sorted(got.values(), key=lambda c: c.ts))
        w0 = w1 + 1
    return sorted(got.values(), key=lambda c: c.ts)


def cmd_fetch_candles(ctx: CommandContext) -> int:
    """Download candles to ``--out`` (.parquet or .csv), resuming after its last candle."""
    args = ctx.args
    trading = ctx.config.trading
    symbol, interval = trading.symbol, trading.interval
    iv = interval_ms(interval)
    out = Path(args.out).expanduser()

    def fail(code: int, msg: str) -> int:
        print(scrub(f"fetch-candles: {msg}"), file=sys.stderr)
        return code

    if out.suffix.lower() not in (".csv", ".parquet"):
        return fail(ExitCode.CONFIG_ERROR, f"--out {out.name!r} must end in .parquet or .csv")
    try:
        now = now_ms()
        end = parse_time_ms(args.end, "--end") if args.end else now
        if args.start:
            start = parse_time_ms(args.start, "--start")
        else:
            if not args.days or args.days <= 0:
                raise FetchArgError(f"bad --days {args.days}: must be > 0")
            start = end - int(args.days * 86_400_000)
    except FetchArgError as exc:
        return fail(ExitCode.CONFIG_ERROR, str(exc))
    # Whole intervals only: the first open at or after start, the newest candle closed at ``end``.
    start = -(-start // iv) * iv
    end_open = min(end, now) // iv * iv - iv
    existing: list[Candle] = []
    if out.exists():
        try:
            loaded = load_candles(out)
        except CandleFileError as exc:
            return fail(ExitCode.BAD_INPUT, f"cannot resume {out}: {exc}")
        if loaded.interval != interval:
            return fail(ExitCode.BAD_INPUT, f"{out} holds {loaded.interval} candles, not {interval}; "
                        "choose another --out or --interval")
        existing = loaded.candles
        start = max(start, existing[-1].ts + iv)
        print(f"resuming {out} after {ms_to_iso(existing[-1].ts)} ({len(existing):,} candles stored)")
    if start > end_open:
        print(f"{out}: up to date ({len(existing):,} candles)")
        return ExitCode.OK

    def save(new: list[Candle]) -> None:
        write_candles(out, existing + [c for c in new if not existing or c.ts > existing[-1].ts])

    async def run() -> list[Candle]:
        async with BitunixRestClient(trading.bitunix_rest_url) as client:
            return await fetch_range(client, symbol, interval, start, end_open, on_checkpoint=save)

    print(f"fetching {symbol} {interval} {ms_to_iso(start)} -> {ms_to_iso(end_open)} from {trading.bitunix_rest_url}")
    try:
        new = asyncio.run(run())
    except ExchangeError as exc:
        return fail(ExitCode.MARKET_DATA_ERRORS, f"exchange error: {exc} (what was fetched so far is kept in {out})")
    except OSError as exc:
        return fail(ExitCode.DISK_FULL, f"cannot write {out}: {exc.strerror or exc}")
    try:
        save(new)
    except OSError as exc:
        return fail(ExitCode.DISK_FULL, f"cannot write {out}: {exc.strerror or exc}")
    total = len(existing) + len(new)
    missing = (end_open - start) // iv + 1 - len(new)
    note = f"; {missing:,} intervals had no candle on the exchange" if missing > 0 else ""
    print(f"{out}: {len(new):,} new candles, {total:,} in total{note}")
    ctx.log.info("candles fetched", extra={"fields": {"out": str(out), "new": len(new), "total": total}})
    return ExitCode.OK
