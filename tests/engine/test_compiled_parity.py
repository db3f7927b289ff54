"""The optional compiled core (mypyc, ``make compiled``) against the pure one:
the same candles give the same bytes, and the switch between them.

The parity test runs ``parity_run.py`` twice in subprocesses, with the
compiled core and with ``LA_PURE=1``, and compares every output file byte for
byte (summary.json without its wall-clock fields). It is skipped when no
compiled build is present (no C compiler: the pure core is the product).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from laptop_agents import _compiled
from laptop_agents._compiled import COMPILED_MODULES, MANIFEST, core_kind

from ..conftest import PROJECT_ROOT, SHARED_DATA

DRIVER = Path(__file__).with_name("parity_run.py")
WALL_CLOCK_FIELDS = ("elapsed_s", "candles_per_s", "run_dir")


def _run(out: Path, *, pure: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != _compiled.PURE_ENV}
    if pure:
        env[_compiled.PURE_ENV] = "1"
    args = [sys.executable, str(DRIVER), str(out)]
    data = SHARED_DATA / "btcusd_15m_2021.csv"
    if data.is_file():
        args.append(str(data))
    proc = subprocess.run(args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""  # no stale-build notice: the build matches the sources
    return (out.parent / f"{out.name}.core").read_text()


def _comparable(path: Path) -> bytes:
    if path.name != "summary.json":
        return path.read_bytes()
    summary = json.loads(path.read_text())
    for key in WALL_CLOCK_FIELDS:
        assert key in summary, key  # the fields left out exist (the exclusion is not stale)
        summary.pop(key)
    return json.dumps(summary, sort_keys=True).encode()


@pytest.mark.skipif(core_kind() != "compiled", reason="no compiled core built (make compiled; needs a C compiler)")
def test_pure_and_compiled_cores_write_the_same_bytes(tmp_path: Path) -> None:
    assert _run(tmp_path / "compiled", pure=False) == "compiled"
    assert _run(tmp_path / "pure", pure=True) == "pure"
    files = sorted(p.relative_to(tmp_path / "pure") for p in (tmp_path / "pure").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "compiled") for p in (tmp_path / "compiled").rglob("*") if p.is_file())
    names = {f.name for f in files}
    assert {"events.jsonl", "trades.csv", "equity.csv", "snapshot.bin", "state.bin", "steps.txt"} <= names
    trades = (tmp_path / "pure" / "sma_cross" / "run" / "trades.csv").read_text().splitlines()
    assert len(trades) > 10  # the runs trade: the comparison covers fills, exits and reversals
    for rel in files:
        assert _comparable(tmp_path / "pure" / rel) == _comparable(tmp_path / "compiled" / rel), rel


# ---------------------------------------------------------------- the switch


def _fake_build(root: Path, *, manifest: bool = True, extensions: bool = True) -> None:
    """A src/ tree with every compiled module's source, a fake extension
    beside each, and the manifest of a build from these sources."""
    digests = {}
    for mod in COMPILED_MODULES:
        rel = mod.replace(".", "/")
        src = PROJECT_ROOT / "src" / (rel + ".py")
        dst = root / (rel + ".py")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        if extensions:
            (root / (rel + ".cpython-311-x86_64-linux-gnu.so")).write_bytes(b"")
        digests[mod] = hashlib.sha256(dst.read_bytes()).hexdigest()
    if manifest:
        (root / MANIFEST).write_text(json.dumps({"python": "3.11", "modules": digests}))


def test_a_matching_build_is_used_and_a_stale_or_partial_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_compiled, "_SRC", tmp_path)
    monkeypatch.delenv(_compiled.PURE_ENV, raising=False)
    monkeypatch.setattr(_compiled.importlib.machinery, "EXTENSION_SUFFIXES", [".cpython-311-x86_64-linux-gnu.so"])
    assert _compiled._why_pure() is None  # nothing built: plain imports, pure Python
    _fake_build(tmp_path)
    assert _compiled._why_pure() is None  # a build of these very sources: the extensions load
    monkeypatch.setenv(_compiled.PURE_ENV, "1")
    assert _compiled._why_pure() == ""  # asked for pure: silently
    monkeypatch.delenv(_compiled.PURE_ENV)
    engine = tmp_path / "laptop_agents" / "engine" / "engine.py"
    engine.write_text(engine.read_text() + "\n# edited\n")
    why = _compiled._why_pure()
    assert why is not None and "stale" in why and "laptop_agents.engine.engine" in why
    (tmp_path / MANIFEST).unlink()
    why = _compiled._why_pure()
    assert why is not None and "incomplete build" in why
    (tmp_path / MANIFEST).write_text("{not json")
    why = _compiled._why_pure()
    assert why is not None and "unreadable" in why


def test_the_pure_switch_loads_every_core_module_from_its_source() -> None:
    code = (
        "import importlib, laptop_agents._compiled as c\n"
        "mods = [importlib.import_module(m) for m in c.COMPILED_MODULES]\n"
        "print(c.core_kind(), all(m.__file__.endswith('.py') for m in mods))\n"
    )
    env = dict(os.environ, **{_compiled.PURE_ENV: "1"})
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["pure", "True"]


def test_without_a_c_compiler_the_build_says_so_in_one_line_and_leaves_the_core_alone() -> None:
    before = core_kind()
    env = dict(os.environ, CC=str(PROJECT_ROOT / "no-such-cc"))
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "build_compiled.py"), "--force"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["compiled core: skipped (no C compiler found); the pure-Python core is used"]
    assert core_kind() == before  # an up-to-date build (or none) is not touched
