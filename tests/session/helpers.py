"""Starting the real session CLI in a subprocess, in an isolated workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Fast defaults for tests: high speed, few warm-up bars, frequent heartbeats.
FAST = ["--async", "--source", "mock", "--speed", "600", "--warmup-bars", "30"]


@dataclass
class Session:
    proc: subprocess.Popen[str]
    workspace: Path

    def wait(self, timeout: float = 60.0) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"session did not end within {timeout} s\nstdout:\n{out}\nstderr:\n{err}") from None
        return self.proc.returncode, out, err

    def heartbeat(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.workspace / "heartbeat.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def session_env(workspace: Path, harness: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LA_", "LAPTOP_AGENTS_"))}
    env["LAPTOP_AGENTS_WORKSPACE"] = str(workspace)
    env["LA_SYSTEM__HEARTBEAT_INTERVAL_S"] = "0.2"
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "120"
    if harness:
        env["LA_TEST_HARNESS"] = harness
    env.update(extra)
    return env


def start(workspace: Path, *args: str, harness: str | None = None, env: dict[str, str] | None = None,
          seed_flags: bool = True) -> Session:
    """``python -m tests.session.harness --mode live-session <args>`` (the real CLI)."""
    cmd = [sys.executable, "-m", "tests.session.harness"]
    if seed_flags:
        cmd += ["--mode", "live-session"]
    cmd += list(args)
    full_env = session_env(workspace, harness)
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return Session(proc, workspace)


def run(workspace: Path, *args: str, timeout: float = 60.0, **kw: Any) -> tuple[int, str, str]:
    return start(workspace, *args, **kw).wait(timeout)


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or pred}")


def summary(workspace: Path) -> dict[str, Any]:
    runs = sorted((workspace / "runs").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    assert runs, f"no summary.json under {workspace / 'runs'}"
    return json.loads(runs[-1].read_text(encoding="utf-8"))


def events(workspace: Path) -> list[dict[str, Any]]:
    runs = sorted((workspace / "runs").glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime)
    assert runs, "no events.jsonl"
    return [json.loads(line) for line in runs[-1].read_text(encoding="utf-8").splitlines() if line.strip()]


def system_log(workspace: Path) -> list[dict[str, Any]]:
    path = workspace / "logs" / "system.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
