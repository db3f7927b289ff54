"""Structured logs (JSON lines, size-rotated) and secret scrubbing.

Secrets come from the environment only. Every value of an environment variable
whose name looks secret (KEY, SECRET, TOKEN, PASSWORD, PASSPHRASE, SIGN) is
registered with the scrubber and replaced by ``***`` in every log line, in
exception text and tracebacks, and in anything else written to disk through
:func:`scrub` (events, reports, crash files). Bearer tokens and ``sign=``
query values are masked by pattern as well.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.fileio import problem

_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSPHRASE|SIGN|CREDENTIAL)", re.IGNORECASE)
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)((?:api[-_]?key|secret(?:[-_]?key)?|sign|token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{6,}"),
)
_TRIGGERS = ("bearer", "key", "secret", "sign", "token")
_MIN_SECRET_LEN = 6
MASK = "***"


class SecretScrubber:
    """Replaces known secret values and secret-looking patterns in text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def register(self, *values: str | None) -> None:
        with self._lock:
            new = {v for v in values if v and len(v) >= _MIN_SECRET_LEN}
            # Longest first so a secret containing another is masked whole.
            self._values = tuple(sorted(set(self._values) | new, key=len, reverse=True))

    def register_environ(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.register(*(v for k, v in env.items() if _SECRET_NAME.search(k)))

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        # The patterns only match after one of these words, so most lines (a
        # fill, a decision) skip the regexes: scrubbing sits on the journal's
        # per-event path.
        low = text.lower()
        if any(word in low for word in _TRIGGERS):
            for pattern in _PATTERNS:
                text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


SCRUBBER = SecretScrubber()
SCRUBBER.register_environ()


def scrub(text: str) -> str:
    """Mask secrets in ``text`` before it is written anywhere."""
    return SCRUBBER.scrub(text)


def scrub_obj(obj: Any) -> Any:
    """Recursively scrub strings inside JSON-able data."""
    if isinstance(obj, str):
        return SCRUBBER.scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_obj(v) for v in obj]
    return obj


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, message, pid, fields.

    The pid tells apart the processes that share a workspace's log: the
    watchdog and each session it restarted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": ms_to_iso(int(record.created * 1000), "milliseconds"),
            "level": record.levelname,
            "component": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry["fields"] = fields
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return scrub(json.dumps(scrub_obj(entry), default=str, ensure_ascii=False))


class ScrubFilter(logging.Filter):
    """Scrubs the message and exception text of records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = scrub(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatters reuse a cached exc_text, so caching the scrubbed one
            # keeps the raw traceback (which may quote a secret) off every handler.
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = scrub_obj(fields)
        return True


class _ConsoleFilter(logging.Filter):
    """Keeps records marked ``extra={"console": False}`` (already printed as
    one line by the caller) off the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True) is not False


class _OneLineFormatter(logging.Formatter):
    """Console lines without tracebacks: a user reads one line per problem;
    the traceback is in the JSON log file for whoever debugs it."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class JsonFileHandler(logging.handlers.RotatingFileHandler):
    """The size-rotated JSON-lines file; a write failure is one stderr line.

    The stock handler prints a "--- Logging error ---" block with a traceback
    for every record it fails to write: on a full disk that is a traceback per
    log line. This one says once that log lines are being lost (and once when
    writing works again), and never raises.
    """

    def __init__(self, filename: Path, **kwargs: Any) -> None:
        super().__init__(filename, **kwargs)
        self._failing = False
        self._failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)
        if self._failing and not self._failed_now:
            self._failing = False
            self._say(f"log file {self.baseFilename} is written again")

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed_now = True
        if self._failing or getattr(record, "console", True) is False:
            return  # said already (or the caller printed its own line about this very problem)
        self._failing = True
        exc = sys.exc_info()[1]
        why = problem(exc) if exc is not None else "unknown error"
        self._say(f"cannot write the log file {self.baseFilename}: {why}; log lines are lost until it can be written again")

    @staticmethod
    def _say(line: str) -> None:
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass


_configured_handlers: list[logging.Handler] = []


def setup_logging(
    log_file: Path | None,
    level: str = "INFO",
    *,
    console: bool = True,
    max_bytes: int = 10_000_000,
    backups: int = 5,
) -> logging.Logger:
    """Configure the ``laptop_agents`` logger tree (idempotent).

    JSON lines go to ``log_file`` (size-rotated); humans get a rich console
    handler on stderr. Returns the package root logger.
    """
    root = logging.getLogger("laptop_agents")
    for handler in _configured_handlers:
        root.removeHandler(handler)
        handler.close()
    _configured_handlers.clear()
    root.setLevel(level)
    root.propagate = False
    if not any(isinstance(f, ScrubFilter) for f in root.filters):
        root.addFilter(ScrubFilter())
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = JsonFileHandler(log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        file_handler.setFormatter(JsonLineFormatter())
        file_handler.addFilter(ScrubFilter())
        _configured_handlers.append(file_handler)
    if console:
        console_handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False,
                                      markup=False)
        console_handler.setFormatter(_OneLineFormatter())
        console_handler.addFilter(ScrubFilter())
        console_handler.addFilter(_ConsoleFilter())
        _configured_handlers.append(console_handler)
    for handler in _configured_handlers:
        root.addHandler(handler)
    return root


def get_logger(component: str) -> logging.Logger:
    """A logger named after its component (``laptop_agents.session.runner``...)."""
    return logging.getLogger(component if component.startswith("laptop_agents") else f"laptop_agents.{component}")


def log_fields(**fields: Any) -> dict[str, Any]:
    """``log.info("msg", extra=log_fields(equity=1.0))`` puts structured fields in the JSON line."""
    return {"fields": fields}


def scrubbed_lines(lines: Iterable[str]) -> list[str]:
    return [scrub(line) for line in lines]
