"""A small deterministic stand-in for a session, driven by a plan.

Usage: child_script.py WORKSPACE LOGFILE PLAN
PLAN is comma separated, one behaviour per start (the n-th start runs the
n-th entry; the last one repeats):

  exit:N        heartbeat for ~0.3 s, then exit N
  run           heartbeat until SIGTERM, then exit 0
  runfor:S:N    heartbeat for S seconds, then exit N
  nobeat:S:N    never heartbeat, exit N after S seconds
  hang          one heartbeat, then silence (SIGTERM still ends it, exit 0)
  stubborn      one heartbeat, then silence, ignoring SIGTERM
  endhang:R     heartbeat "stopped" with reason R, then silence
  sigkill       heartbeat once, then SIGKILL itself
  killfile:N    create the kill file, exit N

Every line it appends to LOGFILE is "<event> <pid> <wall time> <behaviour>".
Only the standard library, so it starts fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

ws, logfile, plan = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")


def log(event: str, behaviour: str) -> None:
    with logfile.open("a", encoding="utf-8") as f:
        f.write(f"{event} {os.getpid()} {time.time():.6f} {behaviour}\n")


def beat(status: str = "running", reason: str | None = None) -> None:
    tmp = ws / "heartbeat.json.tmp"
    tmp.write_text(json.dumps({"ts_ms": int(time.time() * 1000), "pid": os.getpid(),
                               "status": status, "reason": reason}))
    os.replace(tmp, ws / "heartbeat.json")


starts = sum(1 for line in logfile.read_text().splitlines() if line.startswith("start ")) \
    if logfile.exists() else 0
behaviour = plan[min(starts, len(plan) - 1)]
kind, *params = behaviour.split(":")
log("start", behaviour)


def on_term(signum: int, frame: object) -> None:
    log("term", behaviour)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)


def beat_for(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        beat()
        time.sleep(0.05)


if kind == "exit":
    beat_for(0.3)
    code = int(params[0])
elif kind == "run":
    while True:
        beat_for(1.0)
elif kind == "runfor":
    beat_for(float(params[0]))
    code = int(params[1])
elif kind == "nobeat":
    time.sleep(float(params[0]))
    code = int(params[1])
elif kind in ("hang", "stubborn", "endhang"):
    if kind == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    beat("stopped", params[0]) if kind == "endhang" else beat()
    time.sleep(3600)
    code = 0
elif kind == "sigkill":
    beat()
    log("exit", behaviour)
    os.kill(os.getpid(), signal.SIGKILL)
    code = 0
elif kind == "killfile":
    (ws / "kill.txt").write_text("stop\n")
    code = int(params[0])
else:
    raise SystemExit(f"unknown behaviour {behaviour}")

log("exit", behaviour)
sys.exit(code)
