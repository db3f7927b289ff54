"""The layer list in docs/architecture.md is the one import-linter enforces."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_layers_are_the_enforced_ones() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    enforced = [line.strip() for line in cfg["importlinter:contract:layers"]["layers"].strip().splitlines()]
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```layers\n(.*?)```", doc, re.S)
    assert block is not None, "docs/architecture.md lost its ```layers block"
    documented = [line.strip() for line in block.group(1).strip().splitlines()]
    assert documented == enforced


def test_every_top_level_module_is_in_a_layer() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    names = set(re.split(r"[\s|:]+", cfg["importlinter:contract:layers"]["layers"])) - {""}
    package = ROOT / "src" / "laptop_agents"
    present = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert present - {"__init__"} <= names, sorted(present - {"__init__"} - names)
