"""Planted bugs, for the planted-bug tests only (tests/drill/test_drill_planted_bug.py).

Python imports ``sitecustomize`` at start-up when it is on ``sys.path``; this
directory is put there only by those tests (``PYTHONPATH``), and a bug is
planted only when ``LA_TEST_PLANT_BUG`` names it too and the process is a
session on the drill's *faulted* workspace. Nothing of this is in the
installed package: a normal run cannot enable it.

- ``double_fill`` (paper): the paper broker hands every step's first fill out
  twice, so the state store records it twice -- the kind of double-counting
  the drill exists to catch.
- ``double_order`` (live): each session's first placement is sent twice, the
  copy under a new client id -- an exchange order no intent explains.
- ``double_live_fill`` (live): each session's first exchange fill is booked twice.
"""

import os
import sys

if os.environ.get("LA_TEST_PLANT_BUG") == "double_fill" and "run" in sys.argv and any(
    "faulted" in arg for arg in sys.argv
):
    # The compiled core (make compiled) calls its own methods directly, so a
    # method patched on the class would go unseen: plant the bug in the pure one.
    os.environ["LA_PURE"] = "1"
    from laptop_agents.broker import paper

    _drain = paper.PaperBroker.drain

    def _doubled(self):  # type: ignore[no-untyped-def]
        events, fills = _drain(self)
        return events, (fills + fills[:1]) if fills else fills

    paper.PaperBroker.drain = _doubled  # type: ignore[method-assign]

if os.environ.get("LA_TEST_PLANT_BUG") == "double_order" and "run" in sys.argv and any(
    "faulted" in arg for arg in sys.argv
):
    # A live bug: the first placement of each session is sent a second time
    # under a new client id (a "retry" that is not one), so the exchange holds
    # an order and a position the books know nothing of.
    os.environ["LA_PURE"] = "1"
    from laptop_agents.exchange import private_rest

    _place = private_rest.BitunixPrivateClient.place_order
    _sent_twice: list[str] = []

    async def _twice(self, request):  # type: ignore[no-untyped-def]
        ack = await _place(self, request)
        if not _sent_twice and request.client_id and not request.reduce_only:
            _sent_twice.append(request.client_id)
            await _place(self, request.model_copy(update={"client_id": request.client_id + "Z"}))
        return ack

    private_rest.BitunixPrivateClient.place_order = _twice  # type: ignore[method-assign]

if os.environ.get("LA_TEST_PLANT_BUG") == "double_live_fill" and "run" in sys.argv and any(
    "faulted" in arg for arg in sys.argv
):
    # A live bug: the first fill each session takes from the exchange is fed
    # to the engine twice, so the books count it twice.
    os.environ["LA_PURE"] = "1"
    from laptop_agents.broker.live import ExchangeFill
    from laptop_agents.session import execution

    _apply = execution.LiveExecution.apply
    _booked_twice: list[object] = []

    async def _apply_doubled(self, updates, rows, notes=()):  # type: ignore[no-untyped-def]
        fills = [u for u in updates if isinstance(u, ExchangeFill)]
        if fills and not _booked_twice:
            _booked_twice.append(fills[0])
            updates = [*updates, fills[0]]
        return await _apply(self, updates, rows, notes)

    execution.LiveExecution.apply = _apply_doubled  # type: ignore[method-assign]
