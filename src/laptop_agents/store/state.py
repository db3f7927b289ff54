"""The state store: SQLite in WAL mode, one transaction per candle.

Everything the Engine needs to continue after a crash is written in the same
transaction as the open time of the candle it belongs to: the
:class:`~laptop_agents.engine.state.EngineState` (broker state, circuit
breaker and strategy snapshot, as plain data: see that module), working orders
(rows, rewritten only when they changed), processed client ids (appended),
fills and closed trades (appended). Either the whole candle is durable or none
of it is, so a restart resumes exactly after the last committed candle and the
Engine skips anything at or before it (crash-only: startup and recovery are the
same code path, :func:`laptop_agents.engine.recovery.open_engine`, which reads
through this store's :meth:`StateStore.read_state`). The store writes and reads
that record and the ledger rows; it never reaches into the Engine or the broker.

Schema versions: 1 stored the broker state and the strategy snapshot as two
pickled blobs; 2 stores one plain-data :class:`EngineState` blob (versioned by
its own codec). A version-1 file is migrated on open, in one transaction.

Durability choice: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A commit
then appends to the WAL with a ``write()`` but no ``fsync``; the data is in the
operating system's page cache the moment ``commit`` returns, so a process crash
or ``kill -9`` at any instant loses nothing that was committed and never leaves
a half-written candle (WAL frames are checksummed; a torn tail is ignored on
recovery). Only a power cut or kernel panic can lose the last few commits —
the database is still consistent then and the Engine simply re-processes those
candles. ``synchronous=FULL`` (``StateStore(path, synchronous="FULL")``) makes
every commit survive power loss too, at the cost of one fsync per candle.

A damaged file is never "repaired" or overwritten: it is reported with
:class:`StoreCorruptError` and kept for inspection.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from laptop_agents.broker.state import WORKING_ORDER_FIELDS, WorkingOrder
from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import StepResult, Strategy
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.events import TradeClosed
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.engine import (
    Engine,
    EngineIdentity,
    EngineStateError,
    StoredState,
    load_engine,
)
from laptop_agents.engine.state import StateEncoder, decode_state, decode_v1, encode_state
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import problem
from laptop_agents.store.live_orders import (
    CREATE_LIVE_ORDERS,
    SELECT_LIVE_ORDERS,
    UPSERT_LIVE_ORDER,
    LiveOrder,
)

SQLITE_MAGIC = b"SQLite format 3\x00"
SCHEMA_VERSION = 3
PAGE_SIZE = 4096


class StoreError(LaptopAgentsError):
    """Base class of state-store problems; the message is one line for the user."""


class StoreCorruptError(StoreError):
    """The state file is unreadable (bad header, truncated, failed integrity
    check, unknown schema). The file is kept untouched for inspection."""

    exit_code: ClassVar[int] = ExitCode.STORE_CORRUPT


class StoreWriteError(StoreError):
    """A commit could not be written (disk full, read-only, I/O error)."""

    exit_code: ClassVar[int] = ExitCode.DISK_FULL


class StoreMismatchError(StoreError):
    """The stored state belongs to another source, symbol, interval or strategy
    than the config: continuing it would trade one market's state on another's data."""

    exit_code: ClassVar[int] = ExitCode.STORE_MISMATCH


class StoreAheadError(StoreMismatchError):
    """The store's last processed candle lies in the market's future: every
    live candle would be skipped as "already processed" (a fast mock or fake
    exchange wrote it), so the session would trade nothing and check no stop."""


# --- schema and migrations ------------------------------------------------
# Each migration moves the schema from version n-1 to n and runs in one
# transaction with the version bump, so a crash mid-migration changes nothing.
# The statements are history: they stay as written when the code moves on.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE engine_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_candle_ts INTEGER,
            core BLOB NOT NULL,
            strategy BLOB NOT NULL,
            commits INTEGER NOT NULL)""",
        "CREATE TABLE processed_ids (client_id TEXT PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID",
        """CREATE TABLE working_orders (
            client_id TEXT PRIMARY KEY, side TEXT NOT NULL, type TEXT NOT NULL, qty REAL NOT NULL,
            filled REAL NOT NULL, price REAL, stop REAL, target REAL, trailing INTEGER NOT NULL,
            reduce_only INTEGER NOT NULL, reason TEXT NOT NULL, created_ts INTEGER NOT NULL,
            expire_ts INTEGER NOT NULL, seq INTEGER NOT NULL)""",
        """CREATE TABLE fills (
            seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, client_id TEXT NOT NULL, side TEXT NOT NULL,
            qty REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL, liquidity TEXT NOT NULL,
            reason TEXT NOT NULL)""",
        """CREATE TABLE trades (
            seq INTEGER PRIMARY KEY, client_id TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL,
            entry_ts INTEGER NOT NULL, entry_price REAL NOT NULL, exit_ts INTEGER NOT NULL,
            exit_price REAL NOT NULL, pnl REAL NOT NULL, fees REAL NOT NULL, funding REAL NOT NULL,
            net_pnl REAL NOT NULL, exit_reason TEXT NOT NULL)""",
    ),
    # 2: one plain-data EngineState blob instead of the pickled core and strategy blobs.
    2: (
        "ALTER TABLE engine_state RENAME TO engine_state_v1",
        """CREATE TABLE engine_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_candle_ts INTEGER,
            state BLOB NOT NULL,
            commits INTEGER NOT NULL)""",
    ),
    # 3: live execution's orders, committed before they are sent (store/live_orders.py).
    3: (CREATE_LIVE_ORDERS,),
}

_ORDER_COLUMNS = ", ".join(WORKING_ORDER_FIELDS)
_INSERT_ORDER = f"INSERT INTO working_orders ({_ORDER_COLUMNS}, seq) VALUES ({', '.join('?' * (len(WORKING_ORDER_FIELDS) + 1))})"
_SELECT_ORDERS = f"SELECT {_ORDER_COLUMNS} FROM working_orders ORDER BY seq"


_WRITE_FAILURES = ("disk is full", "disk i/o error", "readonly", "read-only", "unable to open", "locked")


def _is_write_failure(exc: sqlite3.Error) -> bool:
    """Errors of the medium (full, read-only, I/O, locked), not of the file's content."""
    return isinstance(exc, sqlite3.OperationalError) and any(w in str(exc).lower() for w in _WRITE_FAILURES)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_file(path: Path) -> None:
    """Cheap structural checks before SQLite touches the file: the header
    magic, and a file at least as long as its header says (truncation).

    The length check is skipped while a write-ahead log is present: a
    checkpoint copies pages in page order, page 1 (with the new, larger page
    count) first, so ``kill -9`` during a checkpoint that grows the file
    leaves it shorter than its header says next to an intact WAL that SQLite
    recovers from. Real damage then still fails the integrity check."""
    if not path.is_file():
        raise StoreCorruptError(f"state store {path} is not a regular file; it was kept for inspection")
    size = path.stat().st_size
    if size == 0:
        # The store is created atomically (temp file + rename), so an empty
        # state.db was never a valid one: it was truncated.
        raise StoreCorruptError(f"state store {path} is empty (truncated); it was kept for inspection")
    with path.open("rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise StoreCorruptError(
            f"state store {path} is not an SQLite database (bad header); it was kept for inspection"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]
    wal = Path(f"{path}-wal")
    wal_frames = wal.is_file() and wal.stat().st_size > 32  # more than the WAL header
    if header_valid and pages and size < pages * page_size and not wal_frames:
        raise StoreCorruptError(
            f"state store {path} is truncated ({size} bytes, header says {pages * page_size}); it was kept for inspection"
        )


def _check_integrity(path: Path) -> None:
    """SQLite's quick check on a READ-ONLY connection, before any read-write
    one exists: closing the last read-write connection checkpoints the WAL
    into the file and deletes it, which would rewrite a damaged store and
    throw away its newest history (the WAL) before anyone could inspect it. A
    read-only connection recovers the WAL (read-only) but never checkpoints."""
    try:
        ro = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreCorruptError(f"cannot open state store {path}: {_one_line(exc)}") from None
    try:
        rows = ro.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if _is_write_failure(exc):
            raise StoreWriteError(f"cannot open state store {path}: {problem(exc)}") from None
        raise StoreCorruptError(
            f"state store {path} is unreadable ({_one_line(exc)}); it was kept for inspection"
        ) from None
    finally:
        ro.close()
    if rows != [("ok",)]:
        first = str(rows[0][0]) if rows else "no result"
        raise StoreCorruptError(
            f"state store {path} failed its integrity check ({first}); it was kept for inspection"
        )


class StateStore:
    """The engine's durable state in one SQLite file (or ``":memory:"``)."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = str(path)
        self.memory = self.path == ":memory:"
        self._encoder = StateEncoder()
        if not self.memory:
            p = Path(self.path)
            wal = Path(self.path + "-wal")
            if p.exists():
                _check_file(p)
            elif wal.exists() and wal.stat().st_size > 0:
                raise StoreCorruptError(
                    f"state store {p} is missing but its write-ahead log {wal} exists; both were kept for inspection"
                )
            else:
                self._create(p)
            _check_integrity(p)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreCorruptError(f"cannot open state store {self.path}: {_one_line(exc)}") from None
        try:
            self.conn.execute("PRAGMA busy_timeout=5000")
            if not self.memory:
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreCorruptError(f"state store {self.path}: cannot use WAL mode (got {mode})")
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
            rows = self.conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                first = str(rows[0][0]) if rows else "no result"
                raise StoreCorruptError(
                    f"state store {self.path} failed its integrity check ({first}); it was kept for inspection"
                )
            self._migrate()
            self._adopt: dict[str, str] = {}
            self._meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            self._has_state = (
                self.conn.execute("SELECT 1 FROM engine_state WHERE id = 1").fetchone() is not None
            )
            row = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM fills").fetchone()
            self._fill_seq = int(row[0])
            row = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM trades").fetchone()
            self._trade_seq = int(row[0])
        except StoreError:
            self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if _is_write_failure(exc):
                raise StoreWriteError(f"cannot open state store {self.path}: {problem(exc)}") from None
            raise StoreCorruptError(
                f"state store {self.path} is unreadable ({_one_line(exc)}); it was kept for inspection"
            ) from None

    @staticmethod
    def _create(path: Path) -> None:
        """Create a new, fully initialised store under a temporary name and
        rename it into place, so a crash never leaves a half-made state.db."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        debris = (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"))
        for leftover in debris:
            leftover.unlink(missing_ok=True)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                # The per-candle state row (broker state and the strategy's
                # compact snapshot, about 2 KiB with the default strategy)
                # fits one 4 KiB page: a commit appends one page to the WAL.
                # Bigger pages only add bytes; smaller ones make the row
                # spill into overflow pages.
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
                conn.execute("PRAGMA journal_mode=WAL")
                _apply_migrations(conn, 0)
            finally:
                conn.close()
            os.replace(tmp, path)
        except BaseException as exc:
            # Nothing half made stays behind: not after a full disk, nor after Ctrl-C.
            for leftover in debris:
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
            if isinstance(exc, sqlite3.OperationalError | OSError):
                raise StoreWriteError(f"cannot create state store {path}: {problem(exc)}") from None
            raise

    def _migrate(self) -> None:
        has_table = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        version = 0
        if has_table:
            row = self.conn.execute("SELECT version FROM schema_version").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreCorruptError(
                f"state store {self.path} has schema version {version}, newer than this program's "
                f"{SCHEMA_VERSION}; upgrade the program (the file was kept)"
            )
        if version < SCHEMA_VERSION:
            try:
                _apply_migrations(self.conn, version)
            except EngineStateError as exc:  # rolled back: the file is as it was
                raise StoreCorruptError(
                    f"state store {self.path} cannot be migrated to schema {SCHEMA_VERSION} ({exc}); "
                    f"it was kept for inspection"
                ) from None

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("SELECT version FROM schema_version").fetchone()[0])

    # ------------------------------------------------------------------ write
    def commit(self, engine: Engine, result: StepResult, live_orders: tuple[LiveOrder, ...] | list[LiveOrder] = ()
               ) -> None:
        """Write everything ``result`` changed in ONE transaction.

        Call it after every processed step (candle, warmup, shutdown); a
        skipped candle (``processed=False``) writes nothing. What is written
        comes from ``engine.persist_payload()``; ``engine.persisted()``
        acknowledges it once durable. ``live_orders`` (live execution) are
        written in the same transaction: an order is durable with the step
        that decided it, before it is sent, and a booked fill with its row."""
        if not result.processed:
            if live_orders:
                self.put_live_orders(live_orders)
            return
        payload = engine.persist_payload()
        identity = payload.identity
        state = payload.state
        blob = self._encoder.encode(state)
        conn = self.conn
        trade_events = [ev for ev in result.events if type(ev) is TradeClosed] if result.events else ()
        if (
            self._has_state
            and not self._adopt
            and not payload.new_ids
            and not payload.orders_changed
            and not result.fills
            and not trade_events
            and not live_orders
        ):
            # Most candles change only the engine_state row: one UPDATE in
            # autocommit mode is one atomic transaction by itself, without the
            # two extra round trips of BEGIN/COMMIT.
            self._check_meta(identity)
            try:
                conn.execute(
                    "UPDATE engine_state SET last_candle_ts = ?, state = ?, commits = commits + 1 WHERE id = 1",
                    (state.last_candle_ts, blob),
                )
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from None
            engine.persisted()
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._has_state:
                    self._write_meta(identity)
                    conn.execute(
                        "INSERT INTO engine_state (id, last_candle_ts, state, commits) VALUES (1, ?, ?, 1)",
                        (state.last_candle_ts, blob),
                    )
                else:
                    self._check_meta(identity)
                    if self._adopt:
                        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                         list(self._adopt.items()))
                    conn.execute(
                        "UPDATE engine_state SET last_candle_ts = ?, state = ?, commits = commits + 1 WHERE id = 1",
                        (state.last_candle_ts, blob),
                    )
                if payload.new_ids:
                    conn.executemany(
                        "INSERT OR IGNORE INTO processed_ids (client_id, ts) VALUES (?, ?)",
                        [(cid, result.ts) for cid in payload.new_ids],
                    )
                if payload.orders_changed:
                    conn.execute("DELETE FROM working_orders")
                    if state.broker.orders:
                        conn.executemany(
                            _INSERT_ORDER, [(*o.to_row(), i) for i, o in enumerate(state.broker.orders)]
                        )
                fill_seq = self._fill_seq
                if result.fills:
                    rows = []
                    for f in result.fills:
                        fill_seq += 1
                        rows.append(
                            (fill_seq, f.ts, f.client_id, f.side.value, f.qty, f.price, f.fee, f.liquidity, f.reason)
                        )
                    conn.executemany("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                trade_seq = self._trade_seq
                trade_rows = []
                for t in trade_events:
                    trade_seq += 1
                    trade_rows.append((
                        trade_seq, t.client_id, t.side, t.qty, t.entry_ts, t.entry_price, t.exit_ts, t.exit_price,
                        t.pnl, t.fees, t.funding, t.net_pnl, t.exit_reason,
                    ))  # fmt: skip
                if trade_rows:
                    conn.executemany(
                        "INSERT INTO trades VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", trade_rows
                    )
                if live_orders:
                    conn.executemany(UPSERT_LIVE_ORDER, [o.to_row() for o in live_orders])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._write_error(exc) from None
        self._has_state = True
        if self._adopt:
            self._meta.update(self._adopt)
            self._adopt = {}
        self._fill_seq = fill_seq
        self._trade_seq = trade_seq
        engine.persisted()

    def _write_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) or _is_write_failure(exc):
            return StoreWriteError(f"cannot write state store {self.path}: {problem(exc)}")
        return StoreCorruptError(f"state store {self.path} is damaged: {_one_line(exc)}")

    def _write_meta(self, identity: EngineIdentity) -> None:
        meta = {
            "symbol": identity.symbol,
            "strategy": identity.strategy,
            "contract": identity.contract,
            "starting_equity": repr(identity.starting_equity),
            "source": identity.source,
            "interval": identity.interval,
        }
        self.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
        self._meta = meta

    def _check_meta(self, identity: EngineIdentity) -> None:
        meta = self._meta
        if meta.get("symbol") != identity.symbol or meta.get("strategy") != identity.strategy:
            raise StoreMismatchError(
                f"state store {self.path} holds {meta.get('symbol')}/{meta.get('strategy')}, "
                f"not {identity.symbol}/{identity.strategy}"
            )

    # ------------------------------------------------------------------ read
    def read_state(self, config: AppConfig, strategy_name: str) -> StoredState | None:
        """The stored engine state and processed ids, or None when nothing is stored
        (the :class:`~laptop_agents.engine.recovery.StateSource` of recovery).

        Refuses (:class:`StoreMismatchError`) when the stored symbol, strategy,
        source or interval differ from the configured ones: continuing another
        market's position with this config would be wrong."""
        row = self.conn.execute("SELECT last_candle_ts, state FROM engine_state WHERE id = 1").fetchone()
        if row is None:
            return None
        symbol = instrument_for(config.trading.symbol).symbol
        stored_symbol, stored_strategy = self._meta.get("symbol"), self._meta.get("strategy")
        if stored_symbol != symbol:
            raise StoreMismatchError(
                f"state store {self.path} holds symbol {stored_symbol}, but the config trades {symbol}; "
                f"use another workspace or remove the store"
            )
        if stored_strategy != strategy_name:
            raise StoreMismatchError(
                f"state store {self.path} holds strategy {stored_strategy!r}, but the config uses "
                f"{strategy_name!r}; use another workspace or remove the store"
            )
        identity = _identity(config)
        for key, value in identity.items():
            stored = self._meta.get(key)
            if stored is not None and stored != value:
                raise StoreMismatchError(
                    f"state store {self.path} was written by {key} {stored}, but the config uses {key} "
                    f"{value}; use another --workspace or move the store away"
                )
        try:
            orders = [WorkingOrder.from_row(r) for r in self.conn.execute(_SELECT_ORDERS)]
            state = decode_state(bytes(row[1]), orders)
        except (EngineStateError, ValueError, TypeError) as exc:
            raise self._unreadable(exc) from None
        ids = frozenset(r[0] for r in self.conn.execute("SELECT client_id FROM processed_ids"))
        # Adopted only with the next commit: a session refused after loading stamps nothing.
        self._adopt_identity(identity)
        return StoredState(state, ids)

    def refused(self, exc: Exception) -> StoreError:
        """The store's error for a stored state the engine could not continue from."""
        if isinstance(exc, EngineStateError):
            return StoreMismatchError(f"state store {self.path}: {exc}")
        return self._unreadable(exc)

    def _unreadable(self, exc: Exception) -> StoreCorruptError:
        return StoreCorruptError(
            f"state store {self.path} holds unreadable engine state ({type(exc).__name__}: {_one_line(exc)}); "
            f"it was kept for inspection"
        )

    def load_engine(
        self, config: AppConfig, strategy: Strategy, *, now_ts: int | None = None
    ) -> Engine | None:
        """The engine continuing from this store, or None when nothing is stored
        (:func:`laptop_agents.engine.recovery.load_engine` on this store)."""
        return load_engine(self, config, strategy, now_ts=now_ts)

    def _adopt_identity(self, identity: dict[str, str]) -> None:
        """Stores written before the source and interval were recorded take the
        current ones with their next commit (not now: a session refused after
        loading must not stamp its identity on the store), so that a later
        change is refused like any other."""
        self._adopt = {k: v for k, v in identity.items() if k not in self._meta}

    def meta(self) -> dict[str, str]:
        return dict(self._meta)

    def last_candle_ts(self) -> int | None:
        row = self.conn.execute("SELECT last_candle_ts FROM engine_state WHERE id = 1").fetchone()
        return None if row is None else row[0]

    def fills(self) -> list[dict[str, Any]]:
        """The fill ledger, oldest first."""
        return self._rows("SELECT * FROM fills ORDER BY seq")

    def trades(self) -> list[dict[str, Any]]:
        """Closed trades, oldest first."""
        return self._rows("SELECT * FROM trades ORDER BY seq")

    def put_live_orders(self, orders: tuple[LiveOrder, ...] | list[LiveOrder]) -> None:
        """Write live order rows alone (an acknowledgement: no engine change), one transaction."""
        if not orders:
            return
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(UPSERT_LIVE_ORDER, [o.to_row() for o in orders])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._write_error(exc) from None

    def live_orders(self) -> list[LiveOrder]:
        """Every live order row, oldest first."""
        return [LiveOrder.from_row(r) for r in self.conn.execute(SELECT_LIVE_ORDERS).fetchall()]

    def processed_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT client_id FROM processed_ids")}

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:  # closing after a failed write: nothing more to save
            pass

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _apply_migrations(conn: sqlite3.Connection, current: int) -> None:
    for version in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 1:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            for sql in _MIGRATIONS[version]:
                conn.execute(sql)
            if version == 2:
                _migrate_state_v1(conn)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            # An interrupt can land after the COMMIT (or before the BEGIN took):
            # a ROLLBACK then would fail and hide it.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _migrate_state_v1(conn: sqlite3.Connection) -> None:
    """Schema 1 to 2: the pickled core and strategy blobs become one
    plain-data EngineState blob (working orders stay rows)."""
    row = conn.execute("SELECT last_candle_ts, core, strategy, commits FROM engine_state_v1 WHERE id = 1").fetchone()
    if row is not None:
        state = decode_v1(bytes(row[1]), bytes(row[2]))  # EngineStateError: the caller names the file
        conn.execute(
            "INSERT INTO engine_state (id, last_candle_ts, state, commits) VALUES (1, ?, ?, ?)",
            (row[0], encode_state(state), row[3]),
        )
    conn.execute("DROP TABLE engine_state_v1")


def _identity(config: AppConfig) -> dict[str, str]:
    """What, besides symbol and strategy, a store's candle history belongs to:
    the market source (the mock's times are simulated) and the bar length."""
    return {"source": config.trading.source, "interval": config.trading.interval}


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000.0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_store_clock(store: StateStore, *, now_ms: int, interval: str, clock: str = "market clock") -> None:
    """Refuse a store whose last processed candle is more than one interval
    ahead of the market's ``now_ms``: the engine skips every candle at or
    before its last one, so such a session would skip all live data. One
    interval of tolerance absorbs clock skew; a smaller lead costs at most a
    candle or two."""
    last = store.last_candle_ts()
    step = interval_ms(interval)
    if last is None or last - now_ms <= step:
        return
    lead_min = (last - now_ms) / 60_000
    raise StoreAheadError(
        f"state store {store.path}: its last candle {_iso(last)} is ahead of the market's now {_iso(now_ms)} "
        f"({clock}) by {lead_min:,.0f} min, so every live candle would be skipped; a faster source (mock --speed, "
        f"a fast fake exchange) wrote it: use another --workspace, or move state.db away to start fresh"
    )
