"""Build the optional compiled core: the deterministic modules compiled by mypyc,
in place (each ``.so`` beside its ``.py`` under ``src/``), plus a manifest of
the sources they were built from.

Usage: ``python scripts/build_compiled.py [--clean]`` (``make compiled``).

Why in place: the editable install puts ``src/`` on ``sys.path`` and CPython
prefers an extension module to a ``.py`` of the same name, so every entry
point (``make run``, the CLI, the tests) uses the compiled core with no switch,
and without a build it is simply the pure-Python package. Why a manifest:
a ``.so`` is a snapshot of its source; ``laptop_agents/_compiled.py`` compares
it with the sources at import and falls back to pure Python (one line on
stderr) when any compiled module's source changed since the build, so an edit
is never shadowed by a stale build.

Without a C compiler or mypyc this prints one line saying it skipped and
exits 0: the compiled core is never required.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
os.environ["LA_PURE"] = "1"  # this process only reads the module list: no stale-build notice

from laptop_agents._compiled import COMPILED_MODULES, MANIFEST, source_digest  # noqa: E402

BUILD = ROOT / "build" / "mypyc"


def _compiler() -> str | None:
    """The C compiler setuptools would use (``CC`` or Python's own), if it runs."""
    cc = os.environ.get("CC") or (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return None
    try:
        subprocess.run([cc, "--version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return cc


def clean() -> int:
    """Remove every compiled module and the manifest (back to pure Python)."""
    removed = 0
    # Every extension module of the package (there are no others than ours,
    # and a module dropped from the list must not outlive its build), and the
    # group library mypyc puts at the top of src/.
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    for so in [*(SRC / "laptop_agents").rglob("*" + suffix), *SRC.glob("*__mypyc*" + suffix)]:
        so.unlink()
        removed += 1
    (SRC / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(BUILD, ignore_errors=True)
    return removed


def _up_to_date() -> bool:
    """Whether the manifest lists exactly these modules, built from these sources,
    and every extension is there (``make test`` then does not rebuild)."""
    try:
        recorded = json.loads((SRC / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    modules = recorded.get("modules") if isinstance(recorded, dict) else None
    return (
        isinstance(modules, dict)
        and recorded.get("python") == sys.version.split()[0]
        and set(modules) == set(COMPILED_MODULES)
        and all(modules[m] == source_digest(SRC, m) for m in COMPILED_MODULES)
        and all((SRC / (m.replace(".", "/") + suffix)).exists() for m in COMPILED_MODULES)
        and any(SRC.glob("*__mypyc*" + suffix))
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules and exit")
    ap.add_argument("--force", action="store_true", help="rebuild even when the build matches the sources")
    args = ap.parse_args(argv)
    if args.clean:
        print(f"compiled core: removed {clean()} extension module(s); the package is pure Python")
        return 0
    fresh = _up_to_date()
    if fresh and not args.force:
        print(f"compiled core: up to date ({len(COMPILED_MODULES)} modules built from these sources)")
        return 0
    cc = _compiler()
    if cc is None:
        # A stale build that cannot be rebuilt goes (it would only print its notice on every run).
        stale = not fresh and clean() > 0
        print("compiled core: skipped (no C compiler found" + ("; the stale build was removed" if stale else "")
              + "); the pure-Python core is used")  # fmt: skip
        return 0
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        print(f"compiled core: skipped (mypyc not importable: {exc}); the pure-Python core is used")
        return 0
    clean()
    paths = [str(Path(mod.replace(".", "/") + ".py")) for mod in COMPILED_MODULES]
    os.chdir(SRC)  # mypyc names the modules from paths relative to the package root
    BUILD.mkdir(parents=True, exist_ok=True)
    os.environ["MYPY_CACHE_DIR"] = str(BUILD / "mypy_cache")
    ext = mypycify(["--config-file", str(ROOT / "pyproject.toml"), *paths], opt_level="3", target_dir=str(BUILD / "c"))
    setup(
        name="laptop-agents-compiled-core",
        ext_modules=ext,
        script_args=["-q", "build_ext", "--inplace", "--build-temp", str(BUILD / "temp"),
                     "--build-lib", str(BUILD / "lib")],
    )  # fmt: skip
    digests = {mod: source_digest(SRC, mod) for mod in COMPILED_MODULES}
    (SRC / MANIFEST).write_text(json.dumps({"python": sys.version.split()[0], "modules": digests}, indent=1) + "\n")
    print(f"compiled core: built {len(COMPILED_MODULES)} modules with mypyc ({cc}) in place under src/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
