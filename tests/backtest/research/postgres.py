"""A real PostgreSQL server for a test: Debian's binaries, a fresh cluster in a temp dir, 127.0.0.1 only.

``make test`` installs Debian's ``postgresql`` package when it is missing. The
server refuses to run as root, so under root the cluster belongs to the
``postgres`` system user the package creates and every server command runs
through ``runuser``. Authentication is ``trust`` on the loopback: the cluster
lives only as long as the test.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MISSING = ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make test` installs Debian's "
           "postgresql package, or run: apt-get install -y postgresql")


@dataclass(frozen=True)
class PgServer:
    url: str
    port: int
    data_dir: Path


def pg_bin() -> Path | None:
    """The newest installed server's bin directory (Debian keeps them off the PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server(database: str = "optuna", user: str = "la") -> Iterator[PgServer]:
    """Start a throw-away cluster on a free 127.0.0.1 port; stop it and delete it afterwards."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError(MISSING)
    as_root = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="la-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()

    def run(*cmd: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", "postgres", "--", *cmd] if as_root else list(cmd)
        return subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False, cwd=root)

    if as_root:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = _free_port()
    started = False
    try:
        r = run(str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "--encoding=UTF8", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr.strip() or r.stdout.strip()}")
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c max_connections=50"
        r = run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"), "-w", "-t", "60",
                "start")
        if r.returncode != 0:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            raise RuntimeError(f"postgres did not start: {r.stderr.strip()} {log[-500:]}")
        started = True
        deadline = time.monotonic() + 30
        while True:
            r = run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database, timeout=30)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb failed: {r.stderr.strip()}")
            time.sleep(0.5)
        yield PgServer(f"postgresql://{user}@127.0.0.1:{port}/{database}", port, data)
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(root, ignore_errors=True)
