"""A planted bug, for ONE test only (tests/drill/test_drill_planted_bug.py).

Python imports ``sitecustomize`` at start-up when it is on ``sys.path``; this
directory is put there only by that test (``PYTHONPATH``), and the bug is
planted only when ``LA_TEST_PLANT_BUG=double_fill`` is set too and the process
is a session on the drill's *faulted* workspace. Nothing of this is in the
installed package: a normal run cannot enable it.

The bug: the paper broker hands every step's first fill out twice, so the
state store records it twice -- the kind of double-counting the drill exists
to catch.
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
