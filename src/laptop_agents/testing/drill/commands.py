"""``laptop-agents drill``: the chaos drill (``--quick``: a day) and the soak (``--soak --days N``),
paper by default, live on the fake exchange's private side with ``--live-fake``.

Exit 0 only when every invariant holds; ``DRILL_FAILED`` naming the broken
ones otherwise. Its workspaces, logs and scorecard stay in
``<workspace>/drills/<id>/`` for inspection.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import uuid
from datetime import UTC, datetime
from types import FrameType

from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.interrupts import Interrupted
from laptop_agents.testing.drill.plan import DEFAULTS, DrillPlan, DrillPlanError, parse_kinds


def _err(line: str) -> None:
    print(line, file=sys.stderr)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def cmd_drill(ctx: CommandContext) -> int:
    args = ctx.args
    if os.name != "posix":
        _err("laptop-agents drill: needs POSIX signals (kill -9, SIGSTOP) and is not available on this system")
        return ExitCode.CONFIG_ERROR
    quick, soak = bool(getattr(args, "quick", False)), bool(getattr(args, "soak", False))
    if quick and soak:
        _err("laptop-agents drill: --quick and --soak exclude each other (--soak --days 1 is a one-day soak)")
        return ExitCode.CONFIG_ERROR
    live = bool(getattr(args, "live_fake", False))
    preset = "soak" if soak else "quick" if quick else "drill"
    days, speed = DEFAULTS[preset]
    try:
        plan = DrillPlan(
            mode="soak" if soak else "drill",
            days=float(args.drill_days) if getattr(args, "drill_days", None) is not None else days,
            speed=float(args.drill_speed) if getattr(args, "drill_speed", None) is not None else speed,
            seed=int(args.drill_seed) if getattr(args, "drill_seed", None) is not None else 7,
            kinds=parse_kinds(getattr(args, "drill_faults", None), live=live),
            live=live,
        )
    except DrillPlanError as exc:
        _err(f"laptop-agents drill: {exc}")
        return ExitCode.CONFIG_ERROR

    from laptop_agents.testing.drill.drill import Drill
    from laptop_agents.testing.drill.scorecard import build, console, write

    drill_id = f"{plan.mode}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    root = ctx.workspace.root / "drills" / drill_id
    try:
        root.mkdir(parents=True)
    except OSError as exc:
        _err(f"laptop-agents drill: cannot create {root}: {exc.strerror or exc}")
        return ExitCode.DISK_FULL
    print(f"drill {drill_id}: {root}", flush=True)
    # SIGTERM unwinds like Ctrl-C: the drill's sessions, watchdogs and tmpfs are cleaned up on the way out.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        outcome = Drill(plan, root, echo=lambda line: print(line, flush=True)).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    code = ExitCode.OK if outcome.ok else ExitCode.DRILL_FAILED
    command = "laptop-agents " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "laptop-agents drill"
    card = build(outcome, command=command, exit_code=int(code))
    js, page = write(card, root)
    console(card, print)
    print(f"scorecard: {js}")
    print(f"           {page}")
    if not outcome.ok:
        _err(f"drill failed: invariant(s) broken: {', '.join(card['failed'])} (see {page})")
    return int(code)
