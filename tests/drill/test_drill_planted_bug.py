"""A drill whose faulted session carries a planted bug (paper: its broker
records a fill twice; live: an order sent twice, or an exchange fill booked
twice) fails, exits DRILL_FAILED and names the broken invariants.

The bugs live in ``tests/drill/plant/sitecustomize.py``, loaded only through
these tests' ``PYTHONPATH`` and ``LA_TEST_PLANT_BUG``: nothing in the package
can plant them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from tests.drill.helpers import PROJECT_ROOT, drill_env, scorecard_of

PLANT = Path(__file__).resolve().parent / "plant"


@pytest.mark.slow
def test_a_broker_that_doubles_a_fill_fails_the_drill_naming_the_invariants(tmp_path: Path) -> None:
    env = drill_env(tmp_path, PYTHONPATH=os.pathsep.join([str(PLANT), str(PROJECT_ROOT / "src")]),
                    LA_TEST_PLANT_BUG="double_fill")
    res = subprocess.run([sys.executable, "-m", "laptop_agents", "drill", "--days", "0.15", "--speed", "720",
                          "--faults", "kill9"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == ExitCode.DRILL_FAILED, res.stdout + res.stderr
    card = scorecard_of(tmp_path)
    failed = set(card["failed"])
    assert {"no_duplicated_fills", "ledger_matches_replay"} <= failed, card["failed"]
    # The fault-free baseline run, without the bug, is clean: the checks name the faulted run only.
    checks = {c["name"]: c for c in card["invariants"]}
    assert "faulted:" in checks["no_duplicated_fills"]["detail"]
    assert "baseline" not in checks["no_duplicated_fills"]["detail"]
    assert checks["no_duplicated_fills"]["measured"]["baseline"]["doubled_in_store"] == 0
    assert checks["no_duplicated_fills"]["measured"]["faulted"]["doubled_in_store"] > 0
    # One line on stderr names them.
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("drill failed: invariant(s) broken:") and "no_duplicated_fills" in last
    assert json.loads((Path(card["_root"]) / "scorecard.json").read_text())["verdict"] == "FAIL"


@pytest.mark.slow
@pytest.mark.parametrize(("bug", "invariant", "finding"), [
    ("double_order", "exchange_orders_once", "the books have no row for"),  # an order sent twice
    ("double_live_fill", "exchange_fills_once", "booked differently from the exchange's fills"),  # a fill booked twice
])
def test_a_live_bug_fails_the_live_drill_naming_the_invariant(tmp_path: Path, bug: str, invariant: str,
                                                              finding: str) -> None:
    env = drill_env(tmp_path, PYTHONPATH=os.pathsep.join([str(PLANT), str(PROJECT_ROOT / "src")]),
                    LA_TEST_PLANT_BUG=bug)
    res = subprocess.run([sys.executable, "-m", "laptop_agents", "drill", "--live-fake", "--days", "0.2", "--speed",
                          "720", "--faults", "kill9"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == ExitCode.DRILL_FAILED, res.stdout + res.stderr
    card = scorecard_of(tmp_path)
    assert {invariant, "position_matches_exchange"} <= set(card["failed"]), card["failed"]
    check = {c["name"]: c for c in card["invariants"]}[invariant]
    # the faulted run only: the fault-free baseline, without the bug, is clean
    assert check["detail"].startswith("faulted: ") and finding in check["detail"] and "baseline" not in check["detail"]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("drill failed: invariant(s) broken:") and invariant in last


def test_the_plant_is_inert_without_its_switch(tmp_path: Path) -> None:
    """On the path but without LA_TEST_PLANT_BUG, the broker is the real one."""
    code = ("import laptop_agents.broker.paper as p, sys; "
            "sys.exit(0 if p.PaperBroker.drain.__name__ == 'drain' else 1)")
    env = drill_env(tmp_path, PYTHONPATH=str(PLANT))
    res = subprocess.run([sys.executable, "-c", code, "run", "--workspace", str(tmp_path / "faulted")],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
