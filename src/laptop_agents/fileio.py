"""File-system trouble as one clear line, and atomic writes that leave no debris.

An unattended session meets full disks, read-only mounts and a directory
where a file should be. Those are conditions a restart cannot fix, so they
end a command with ``ExitCode.DISK_FULL`` and one line naming the path and
the problem -- never a traceback, and never a ``*.tmp`` file left next to
the file that could not be replaced.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# errno values that mean "this file system will not take the write": the
# documented I/O exit code, and no restart (a watchdog would loop forever).
WRITE_PROBLEM_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EFBIG,
        errno.EROFS,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EACCES,
        errno.EPERM,
    )
    if code is not None
)

_PROBLEMS = {
    errno.ENOSPC: "disk full (no space left on device)",
    errno.EFBIG: "disk full (file too large)",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "it is a directory, a file is expected there",
    errno.ENOTDIR: "a file is in the way where a directory is expected",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
if hasattr(errno, "EDQUOT"):
    _PROBLEMS[errno.EDQUOT] = "disk full (quota exceeded)"


def is_write_problem(exc: BaseException) -> bool:
    """True for an OSError of the medium (full, read-only, wrong file type, no permission)."""
    return isinstance(exc, OSError) and exc.errno in WRITE_PROBLEM_ERRNOS


def problem(exc: BaseException) -> str:
    """What went wrong, in words a user acts on (``disk full ...``, ``read-only file system``)."""
    if isinstance(exc, OSError) and exc.errno in _PROBLEMS:
        return _PROBLEMS[exc.errno]
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if isinstance(exc, sqlite3.Error) or "database" in first:
        low = first.lower()
        if "disk is full" in low:
            return f"disk full ({first})"
        if "readonly" in low or "read-only" in low:
            return f"read-only ({first})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return first


def io_error_line(exc: BaseException, path: str | os.PathLike[str] | None = None, doing: str = "cannot write") -> str:
    """``cannot write /ws/lock: it is a directory, a file is expected there``."""
    where = path if path is not None else getattr(exc, "filename", None)
    return f"{doing} {where}: {problem(exc)}" if where else f"{doing}: {problem(exc)}"


def temp_path(path: Path) -> Path:
    """The temporary sibling an atomic write goes through (hidden, per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def replacing(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """Write to the temporary path this yields; when the block ends without an
    error, that file replaces ``path`` in one step (readers see the old or the
    new file, never half of one). For writers that need a path (Arrow's CSV
    and Parquet writers); :func:`write_bytes_atomic` is the same for bytes.

    On any failure (a full disk mid-write, a read-only directory, an
    interrupt) the temporary file is removed before the error propagates, so
    a failed write leaves the directory as it was.

    ``fsync``: the new content and the rename are on the disk before this
    returns, so a power cut right after it leaves the new file, not an empty
    one or the old one. It costs a disk flush (milliseconds, far more on a
    busy or networked disk), so each caller decides: yes where losing the
    write changes what the bot does next (a stop request) or costs hours to
    redo (a downloaded candle history); no for files that are rewritten every
    few seconds or rebuilt from others (heartbeat, summary, report).
    """
    tmp = temp_path(path)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    except BaseException:
        remove_quietly(tmp)
        raise


def write_bytes_atomic(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` in one step (see :func:`replacing` for
    what a failure leaves and when ``fsync`` is worth it)."""
    with replacing(path, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str, *, fsync: bool = False) -> None:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows flushes only a writable handle
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry is data too (POSIX only; on
    Windows a directory cannot be opened this way and NTFS journals the rename)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it exists; a failure to delete is not worth a second error."""
    try:
        path.unlink()
    except OSError:
        pass


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``payload`` as one JSON line (readers see old or new,
    never half). The caller scrubs secrets (``logs.scrub_obj``): this module sits
    below the logging one."""
    write_text_atomic(path, json.dumps(payload, default=str, sort_keys=True) + "\n")
