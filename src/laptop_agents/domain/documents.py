"""YAML/JSON documents written by users (profiles, strategy files), parsed with limits.

A hand-written parameter file is small and shallow. Anything else is a
mistake or an attack, and each of those used to escape as a traceback: bytes
that are not UTF-8, nesting deep enough to exhaust the recursion limit,
YAML aliases that expand to billions of values (the validator then spins for
minutes), or a file of gigabytes read whole. :func:`parse_document` turns
every such case into one :class:`DocumentError` line; callers add which file.

Pure: bytes in, data out (callers read the file, at most ``MAX_BYTES + 1``).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from laptop_agents.domain.errors import UsageError

MAX_BYTES = 1 << 20  # 1 MiB: a strategy file or profile is a few KB
MAX_DEPTH = 32  # deepest real file: symbols.<SYM>.setups.<setup>.<key> (5)
MAX_VALUES = 100_000  # counted with aliases expanded


class DocumentError(UsageError):
    """A document that cannot be used; the message is one line without the file name."""


def parse_document(data: bytes, *, yaml_syntax: bool) -> Any:
    """The parsed document (YAML when ``yaml_syntax``, else JSON), within the limits above."""
    kind = "YAML" if yaml_syntax else "JSON"
    if len(data) > MAX_BYTES:
        raise DocumentError(f"too large (more than {MAX_BYTES:,} bytes; a {kind} parameter file is a few KB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                            f"expected a {kind} text file") from None
    if not text.strip():
        return None  # an empty file is an empty document in both syntaxes; callers decide
    try:
        doc = yaml.safe_load(text) if yaml_syntax else json.loads(text)
    except RecursionError:
        raise DocumentError(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML: {_yaml_problem(exc)}") from None
    except ValueError as exc:
        raise DocumentError(f"not valid JSON: {_first_line(str(exc))}") from None
    check_shape(doc)
    return doc


def check_shape(doc: Any) -> None:
    """Refuse documents deeper than MAX_DEPTH or with more than MAX_VALUES values once
    YAML aliases are expanded (an alias bomb, or a structure that contains itself).

    Iterative, and it stops at the limit, so it costs at most MAX_VALUES steps."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise DocumentError(f"too many values (more than {MAX_VALUES:,}, counting YAML aliases expanded)")
        if depth > MAX_DEPTH:
            raise DocumentError(f"nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node if isinstance(k, (tuple, frozenset)))
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend((v, depth + 1) for v in node)


def _first_line(text: str) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return "".join(ch if ch.isprintable() else "?" for ch in line)[:200]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem:
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return _first_line(f"{problem}{where}")
    return _first_line(str(exc)) or type(exc).__name__


def type_name(doc: Any) -> str:
    """What a document holds, for "must be a mapping, got ..." messages."""
    if doc is None:
        return "null (or an empty file)"
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}.get(
        type(doc), type(doc).__name__)
