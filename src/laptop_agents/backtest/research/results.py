"""What a study found: the leaderboard, the best trial, its strategy file, the overfitting check.

Read from the study's trials alone (their values and user attributes), so
any process that can open the storage -- the one that ran the trials or
another machine later -- writes the same results.

The best trial is the complete, feasible trial with the highest
out-of-sample value (ties: the earlier trial). Its parameters are written as
a strategy file (``best-strategy.yaml``): the strategy's full parameter
set with the trial's overrides applied and the risk settings of the command
(``--risk-pct``, ``--equity``) written in, so ``backtest --strategy-file`` and
``run --strategy-file`` trade exactly what the study scored.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from laptop_agents.backtest.research.overfit import Overfitting, assess
from laptop_agents.config import AppConfig
from laptop_agents.fileio import write_text_atomic
from laptop_agents.logs import scrub, scrub_obj
from laptop_agents.strategy import load_strategy_params
from laptop_agents.strategy.params import apply_overrides

LEADERBOARD_CSV = "leaderboard.csv"
STUDY_JSON = "study.json"
BEST_STRATEGY = "best-strategy.yaml"
STUDY_HTML = "study.html"


@dataclass
class Row:
    """One trial on the leaderboard."""

    number: int
    state: str
    value: float | None
    train_value: float | None
    trades: int | None
    worst_drawdown_pct: float | None
    feasible: bool
    params: dict[str, Any]
    note: str = ""
    folds: list[dict[str, Any]] = field(default_factory=list)

    def key(self) -> tuple[int, int, float, int]:
        complete = self.state == "COMPLETE"
        return (0 if complete else 1, 0 if self.feasible else 1,
                -(self.value if self.value is not None else -math.inf), self.number)


def _row(t: FrozenTrial) -> Row:
    u = t.user_attrs
    note = str(u.get("invalid") or u.get("pruned") or "")
    if t.state == TrialState.PRUNED and not note:
        note = "pruned"
    retried = t.system_attrs.get("failed_trial")
    if retried is not None:
        note = (note + "; " if note else "") + f"re-run of trial {retried}"
    return Row(
        number=t.number, state=t.state.name, value=t.value if t.state == TrialState.COMPLETE else None,
        train_value=u.get("train_value"), trades=u.get("trades"), worst_drawdown_pct=u.get("worst_drawdown_pct"),
        feasible=bool(u.get("feasible", False)) and t.state == TrialState.COMPLETE,
        params=dict(t.params), note=note, folds=list(u.get("folds") or []),
    )


def leaderboard_rows(study: optuna.Study) -> list[Row]:
    """Complete trials (feasible first, best value first), then pruned ones; failed, running and
    waiting trials are not results (a failed one is re-run)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return sorted((_row(t) for t in trials), key=Row.key)


def best_row(rows: Sequence[Row]) -> Row | None:
    return next((r for r in rows if r.state == "COMPLETE" and r.feasible), None)


def overfitting(study: optuna.Study, metric: str, best: Row | None) -> Overfitting:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    tried = [t for t in trials if "invalid" not in t.user_attrs]
    complete = [t for t in tried if t.state == TrialState.COMPLETE and t.user_attrs.get("oos_moments")]
    best_t = next((t for t in complete if best is not None and t.number == best.number), None)
    return assess(
        metric=metric, trials=len(tried),
        best_is=best.train_value if best else None, best_oos=best.value if best else None,
        best_moments=best_t.user_attrs["oos_moments"] if best_t else None,
        all_moments=[t.user_attrs["oos_moments"] for t in complete],
        all_blocks=[t.user_attrs["blocks"] for t in complete if t.user_attrs.get("blocks")],
    )


def state_counts(study: optuna.Study) -> dict[str, int]:
    out = {s.name.lower(): 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] += 1
    return out


# -- files ---------------------------------------------------------------------------------------


def write_leaderboard_csv(rows: Sequence[Row], path: Path) -> Path:
    names = sorted({n for r in rows for n in r.params})
    tmp_rows: list[list[Any]] = [["rank", "trial", "state", "value", "train_value", "test_trades", "worst_test_drawdown_pct",
                 "feasible", *names, "note"]]
    for rank, r in enumerate(rows, 1):
        tmp_rows.append([rank, r.number, r.state, _cell(r.value), _cell(r.train_value), _cell(r.trades),
                         _cell(r.worst_drawdown_pct), r.feasible, *(_cell(r.params.get(n)) for n in names), r.note])
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(tmp_rows)
    write_text_atomic(path, scrub(buf.getvalue()))
    return path


def _cell(v: Any) -> Any:
    return "" if v is None else v


def best_params_document(config: AppConfig, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The full parameter set of the study's strategy with the best trial's overrides applied, and the
    command's risk settings written in (they would otherwise come from the command line)."""
    params = apply_overrides(load_strategy_params(config.strategy, config.trading.symbol), dict(overrides),
                             "the best trial's parameters")
    doc = params.model_dump(mode="json")
    risk = dict(doc.get("risk") or {})
    if config.risk.risk_pct is not None and "risk_pct" in risk:
        risk["risk_pct"] = config.risk.risk_pct
    if config.risk.starting_equity is not None and "equity" in risk:
        risk["equity"] = config.risk.starting_equity
    if risk:
        doc["risk"] = risk
    return doc


def write_best_strategy(config: AppConfig, best: Row, study_name: str, metric: str, path: Path) -> Path:
    doc = best_params_document(config, best.params)
    header = [
        f"# The best parameters of study {study_name!r}: trial {best.number},",
        f"# out-of-sample {metric} {best.value:.6g} (in-sample {_g(best.train_value)}), "
        f"{best.trades} test trades.",
        f"# Written {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} for {config.trading.symbol} "
        f"{config.trading.interval}; fees and slippage are the profile's (broker section).",
        "# Use it as is: laptop-agents backtest FILE --strategy-file best-strategy.yaml",
        "#                laptop-agents run --strategy-file best-strategy.yaml",
        "# Searched parameters: " + (", ".join(f"{k}={v}" for k, v in best.params.items()) or "(none)"),
    ]
    text = "\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=False)
    write_text_atomic(path, scrub(text))
    return path


def _g(v: Any) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def write_study_json(doc: Mapping[str, Any], path: Path) -> Path:
    write_text_atomic(path, scrub(json.dumps(scrub_obj(_finite(doc)), indent=2, allow_nan=False)) + "\n")
    return path


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
