"""Secrets never reach disk: logs, exceptions and tracebacks are scrubbed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from laptop_agents.logs import SCRUBBER, get_logger, scrub, setup_logging

SECRET = "sk-live-9f8e7d6c5b4a3210"


def test_secret_in_exception_message_is_scrubbed(tmp_path: Path) -> None:
    SCRUBBER.register_environ({"BITUNIX_API_SECRET": SECRET})
    log_file = tmp_path / "logs" / "system.jsonl"
    setup_logging(log_file, "INFO", console=False)
    log = get_logger("test.secrets")
    try:
        raise RuntimeError(f"signature failed for secret {SECRET}")
    except RuntimeError:
        log.exception("order failed with %s", SECRET, extra={"fields": {"key": SECRET, "nested": [SECRET]}})
    log.info("plain message", extra={"fields": {"equity": 10000.0}})
    for handler in logging.getLogger("laptop_agents").handlers:
        handler.flush()
    text = log_file.read_text()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["level"] == "ERROR" and lines[0]["component"] == "laptop_agents.test.secrets"
    assert "***" in lines[0]["message"] and "RuntimeError" in lines[0]["exception"]
    assert lines[1]["fields"] == {"equity": 10000.0}
    assert {"time", "level", "component", "message"} <= set(lines[1])


def test_patterns_are_masked_without_registration() -> None:
    text = scrub("Authorization: Bearer abcdef123456 api_key=QWERTY123456 sign=deadbeefcafe")
    assert "abcdef123456" not in text and "QWERTY123456" not in text and "deadbeefcafe" not in text


def test_crash_of_the_cli_does_not_leak_secret(tmp_path: Path) -> None:
    """A crash (here: an unreadable profile path containing the secret) prints scrubbed text."""
    env = {**os.environ, "BITUNIX_API_KEY": SECRET, "LAPTOP_AGENTS_WORKSPACE": str(tmp_path / "ws")}
    out = subprocess.run([sys.executable, "-m", "laptop_agents", "config", "show", "--profile", f"/nonexistent/{SECRET}.yaml"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert SECRET not in out.stdout + out.stderr


def test_rotation(tmp_path: Path) -> None:
    log_file = tmp_path / "system.jsonl"
    setup_logging(log_file, "INFO", console=False, max_bytes=100_000, backups=2)
    log = get_logger("test.rotate")
    for i in range(3000):
        log.info("line %d %s", i, "x" * 80)
    assert (tmp_path / "system.jsonl.1").exists()
    assert not (tmp_path / "system.jsonl.3").exists()
