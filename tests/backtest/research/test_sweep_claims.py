"""Two workers never run the same waiting trial: claiming one is atomic on SQLite too.

SQLite ignores ``SELECT ... FOR UPDATE`` and Python's sqlite3 begins the
transaction only at the UPDATE, so Optuna's own WAITING -> RUNNING check reads
outside it: two workers that both read "waiting" both won the trial, ran it,
and the second crashed on telling a trial the first had completed (seen as
"Cannot tell a COMPLETE trial" from a two-process ``validate`` under load).
The interleaving is forced here: the second worker claims the trial between
the first one's read and its write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import event

from laptop_agents.backtest.research import sweep
from laptop_agents.backtest.research.objective import ObjectiveSpec
from laptop_agents.backtest.research.space import Space
from laptop_agents.backtest.research.walkforward import DataSpec


def _study(url: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="claims", storage=sweep.open_storage(url))


def test_a_waiting_trial_is_claimed_by_one_worker_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = sweep.open_storage(url)
    first = optuna.create_study(study_name="claims", storage=storage, direction="maximize")
    first.enqueue_trial({"x": 1})
    second = _study(url)  # another worker: its own connection to the same file

    raced: list[Any] = []

    def other_worker_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The first worker is about to write its claim: the second one claims the trial just before.
        if statement.lstrip().upper().startswith("UPDATE TRIALS") and not raced:
            raced.append(None)
            raced[0] = sweep._pop_waiting(second)

    engine = getattr(storage, "_backend", storage).engine
    event.listen(engine, "before_cursor_execute", other_worker_first)
    try:
        mine = sweep._pop_waiting(first)
    finally:
        event.remove(engine, "before_cursor_execute", other_worker_first)
    assert raced, "the first worker never wrote a claim"
    winners = [t for t in (mine, raced[0]) if t is not None]
    assert len(winners) == 1, "both workers claimed the one waiting trial"
    assert [t.state for t in _study(url).get_trials()] == [TrialState.RUNNING]


def test_claims_still_take_each_waiting_trial_once_in_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="claims", storage=sweep.open_storage(url), direction="maximize")
    for x in range(3):
        study.enqueue_trial({"x": x})
    other = _study(url)
    got = [sweep._pop_waiting(s) for s in (study, other, study, other)]
    assert [t is not None for t in got] == [True, True, True, False]
    assert [t.number for t in got if t is not None] == [0, 1, 2]
    for t in got:
        if t is not None:
            assert t.suggest_int("x", 0, 5) == t.number  # the enqueued parameters come with the claim
    # an in-memory study (one process, no storage to share) claims the same way
    mem = optuna.create_study(direction="maximize")
    mem.enqueue_trial({"x": 4})
    claimed = sweep._pop_waiting(mem)
    assert claimed is not None and sweep._pop_waiting(mem) is None


def test_ask_takes_a_requeued_trial_with_the_same_atomic_claim(tmp_path: Path) -> None:
    """A TPE study's ``ask()`` pops re-queued trials (a dead worker's) too: through our claim, so
    the same race leaves the trial to the worker that claimed it first and ``ask`` starts a new one."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = sweep.SweepSpec(ObjectiveSpec(config_json="{}", data=DataSpec(file="unused.csv"), splits=2,
                                         train_frac=0.6, space=Space(())), budget=4)
    storage = sweep.open_storage(url)
    first, created = sweep.open_study(storage, "claims", spec)
    assert created
    first.enqueue_trial({"x": 1})  # as requeue() does for a killed worker's trial
    second, joined = sweep.open_study(sweep.open_storage(url), "claims", spec)
    assert not joined

    raced: list[Any] = []

    def other_worker_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE TRIALS") and not raced:
            raced.append(None)
            raced[0] = second.ask()

    engine = getattr(storage, "_backend", storage).engine
    event.listen(engine, "before_cursor_execute", other_worker_first)
    try:
        mine = first.ask()
    finally:
        event.remove(engine, "before_cursor_execute", other_worker_first)
    assert raced and raced[0] is not None
    assert raced[0].number == 0 and mine.number == 1  # the queued trial went to one worker only
    assert raced[0].suggest_int("x", 0, 5) == 1


def test_two_processes_creating_the_same_study_file_at_once_both_open_it(tmp_path: Path) -> None:
    """Optuna creates its tables after checking which are missing; another worker (or a second
    machine's ``optimize`` on a shared file) creating them in between made the first one fail with
    'table ... already exists' (exit 2). The other creator is forced into that gap here."""
    from optuna.storages._rdb import models

    url = f"sqlite:///{tmp_path / 'study.db'}"
    other: list[Any] = []

    def another_creator_first(target: Any, connection: Any, **kw: Any) -> None:
        if not other:
            other.append(None)
            other[0] = sweep.open_storage(url)  # the other process's connection creates the tables now

    event.listen(models.BaseModel.metadata, "before_create", another_creator_first)
    try:
        mine = sweep.open_storage(url)
    finally:
        event.remove(models.BaseModel.metadata, "before_create", another_creator_first)
    assert other and other[0] is not None
    a = optuna.create_study(study_name="shared", storage=mine, direction="maximize")
    b = optuna.load_study(study_name="shared", storage=other[0])
    a.enqueue_trial({"x": 2})
    assert [t.state for t in b.get_trials()] == [TrialState.WAITING]
