"""``laptop-agents fake-exchange``: serve the fake Bitunix exchange in the foreground.

Prints one line with the REST and websocket URLs (a script can read the port
from it), then serves until Ctrl-C/SIGTERM. Refuses any non-loopback host.
"""

from __future__ import annotations

import signal
import sys

from laptop_agents.context import CommandContext
from laptop_agents.exchange import protocol
from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange.faults import FaultSpecError, parse_schedule
from laptop_agents.testing.fake_exchange.server import FakeExchangeError, bind_socket, uvicorn_server
from laptop_agents.testing.fake_exchange.state import FakeExchange, FakeExchangeConfig


def cmd_fake_exchange(ctx: CommandContext) -> int:
    args = ctx.args
    try:
        schedule = parse_schedule(getattr(args, "faults", None))
        config = FakeExchangeConfig(
            seed=int(getattr(args, "seed", None) or 7),
            interval=getattr(args, "fake_interval", None) or "1m",
            speed=float(getattr(args, "fake_speed", None) or 1.0),
            push_interval_s=float(getattr(args, "push_interval", None) or 0.5),
            ping_timeout_s=float(getattr(args, "ping_timeout", None) or protocol.WS_SERVER_PING_TIMEOUT_S),
            history_bars=int(getattr(args, "history_bars", None) or 20_000),
            faults=tuple(schedule),
        )
    except (FaultSpecError, ValueError) as exc:
        print(f"fake-exchange: {str(exc).splitlines()[0]}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    try:
        sock = bind_socket(getattr(args, "host", "127.0.0.1") or "127.0.0.1", int(getattr(args, "port", 0) or 0))
    except FakeExchangeError as exc:
        print(f"fake-exchange: {exc}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    ex = FakeExchange(config)
    host, port = sock.getsockname()[:2]
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(
        f"fake exchange: REST http://{netloc}  websocket ws://{netloc}{protocol.WS_PUBLIC_PATH}  "
        f"(seed {config.seed}, {config.interval}, speed {config.speed:g}x, {len(schedule)} scheduled faults)",
        flush=True,
    )
    ctx.log.info("fake exchange serving", extra={"fields": {"port": port, "seed": config.seed, "speed": config.speed}})
    # uvicorn re-raises the signal that stopped it once it has shut down; a
    # quiet SIGTERM handler makes that a clean exit (0) rather than a kill.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        uvicorn_server(ex).run(sockets=[sock])
    finally:
        sock.close()
        signal.signal(signal.SIGTERM, previous)
    print("fake exchange stopped", flush=True)
    return ExitCode.OK
