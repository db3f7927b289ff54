"""``laptop-agents drill --quick``, for real: two fake exchanges, two
watchdog-run sessions, a simulated day with every fault kind, the scorecard.
It must pass, and say what happened to each fault."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.drill.plan import KIND_NAMES
from tests.drill.helpers import PROJECT_ROOT, drill_env, scorecard_of


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_quick_drill_passes_with_every_fault_kind_and_its_outcome(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "laptop_agents", "drill", "--quick"], cwd=PROJECT_ROOT,
                         env=drill_env(tmp_path), capture_output=True, text=True, timeout=580)
    card = scorecard_of(tmp_path)
    assert res.returncode == ExitCode.OK, "\n".join([res.stdout[-4000:], res.stderr[-2000:]])
    assert card["verdict"] == "PASS" and card["failed"] == [] and card["exit_code"] == 0
    kinds = set(card["fault_kinds"])
    assert len(kinds) >= 12
    # Every kind was injected -- or says why not (the full disk needs root for its tmpfs).
    for f in card["faults"]:
        assert f["outcome"], f
        if f["injected"]:
            assert f["recovered"] is True and f["recover_s"] is not None, f
        else:
            assert f["why_not"] and f["outcome"].startswith("not injected:"), f
    assert kinds | {f["kind"] for f in card["faults"] if not f["injected"]} == set(KIND_NAMES)
    names = {c["name"] for c in card["invariants"]}
    assert {"candles_processed_once", "ledger_matches_replay", "matches_baseline", "no_duplicated_fills",
            "no_lost_fills", "store_integrity", "faults_survived", "rss_flat"} <= names
    # The scorecard says what the faults did, and it is also an HTML page beside the JSON.
    by_kind = {f["kind"]: f for f in card["faults"] if f["injected"]}
    if "kill9" in by_kind:
        assert "killed (SIGKILL)" in by_kind["kill9"]["outcome"] and "restarted" in by_kind["kill9"]["outcome"]
    if "hang" in by_kind:
        assert "the watchdog killed it" in by_kind["hang"]["outcome"]
    if "full_disk" in by_kind:
        assert "exit 10 (disk_full)" in by_kind["full_disk"]["outcome"]
    page = Path(card["_root"]) / "scorecard.html"
    assert page.is_file() and "Invariants" in page.read_text() and "PASS" in page.read_text()
    assert "verdict: PASS" in res.stdout
