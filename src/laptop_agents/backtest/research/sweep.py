"""The one sweep engine: an Optuna study in a storage, worked on by any number of processes.

``optimize`` (TPE, or ``--grid``) and ``validate --grid`` both run here. A
study lives in a **storage**: Optuna's in-memory one (one process), a SQLite
file (the default for ``optimize``: ``<workspace>/studies.db``) or any
database URL Optuna's RDB storage accepts (``postgresql://host/db``), which
several processes on several machines share: each one that opens the same
study name works on it, and the study ends when its budget of finished trials
is reached.

How work is shared and never lost:

- A worker takes a **waiting** trial first (a grid's combinations are all
  enqueued when the study is created; a retried trial waits there too), else
  (TPE) asks the sampler for a new one while ``finished + running`` is below
  the budget; when the rest of the budget is being run by others it waits
  for them, so a study ends only when no trial is running or waiting.
- Every RDB worker writes a **heartbeat** for its running trial every
  ``heartbeat_s`` seconds. A trial whose heartbeat is older than
  ``3 x heartbeat_s`` belongs to a dead worker (``kill -9``, a lost machine):
  any worker marks it failed and enqueues its parameters again
  (``RetryHeartbeatStaleTrialCallback``), so it is re-run, not lost.
- **Ctrl-C** marks the interrupted trial failed and enqueues it again at
  once; running the same command later resumes the study where it stopped.

Reproducibility: the sampler is re-seeded for every trial from ``seed`` and
the trial's number, so one worker replays the same trials for the same
seed, and parallel workers never draw the same random points. (With several
workers the order in which trials finish, and so what TPE has learned when
it proposes trial *k*, depends on timing.)

A study records a signature of its objective (strategy and parameters,
risk and broker settings, a digest of the data, folds, metric, constraints,
space, sampler, seed); a worker whose own settings differ is refused in one
line instead of mixing two experiments in one study.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, UpdateFinishedTrialError
from optuna.samplers import BaseSampler, TPESampler
from optuna.storages import BaseStorage, InMemoryStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from laptop_agents.backtest.research.objective import Objective, ObjectiveSpec
from laptop_agents.domain.errors import UsageError
from laptop_agents.domain.models import Candle, FundingRate

STUDIES_DB = "studies.db"
DEFAULT_HEARTBEAT_S = 10
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def worker_id() -> str:
    """Which machine and process ran a trial (kept on the trial)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StudyError(UsageError):
    """A storage that cannot be opened, or a study whose settings differ from this command's; one line."""


# -- storage -----------------------------------------------------------------------------


def storage_url(raw: str | None, workspace_root: Path) -> str:
    """The storage URL: ``--storage`` (a database URL, or a file path for SQLite), else the workspace's
    ``studies.db``."""
    if raw is None or not raw.strip():
        return f"sqlite:///{(workspace_root / STUDIES_DB).resolve()}"
    raw = raw.strip()
    if "://" in raw:
        return raw
    return f"sqlite:///{Path(raw).expanduser().resolve()}"


def mask_url(url: str) -> str:
    """The URL with its password masked, fit for a terminal, a log or a report."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: show only its scheme
        return url.split("://", 1)[0] + "://..."


def _register_password(url: str) -> None:
    """A password inside the URL is a secret: the log scrubber masks it everywhere from now on."""
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        return
    if password:
        from laptop_agents.logs import SCRUBBER

        SCRUBBER.register(str(password))


def _prepare_sqlite(url: str) -> None:
    """Create the SQLite file in WAL mode (readers do not block the writer; several local
    workers share it) before Optuna opens it."""
    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if not path or path == ":memory:":
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def open_storage(url: str | None, *, heartbeat_s: int = DEFAULT_HEARTBEAT_S) -> BaseStorage:
    """Optuna's in-memory storage (``url`` None) or an RDB storage with heartbeats and stale-trial retry.

    A database that cannot be reached, a missing driver or a bad URL is a :class:`StudyError` naming the
    masked URL."""
    if url is None:
        return InMemoryStorage()
    _register_password(url)
    shown = mask_url(url)
    kwargs: dict[str, Any] = {}
    try:
        if url.startswith("sqlite"):
            _prepare_sqlite(url)
            kwargs = {"connect_args": {"timeout": 60}}
        else:
            kwargs = {"pool_pre_ping": True}
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    return RDBStorage(
                        url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(),
                    )
            except Exception as exc:
                # Optuna creates the tables it found missing a moment before: another worker (another
                # machine) creating them in that gap is a race, not a broken database. Open it again.
                if attempt + 1 == SCHEMA_ATTEMPTS or not _schema_race(exc):
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")  # the loop returns or raises
    except ImportError as exc:
        raise StudyError(f"cannot open the study storage {shown}: its database driver is not installed "
                         f"({_first_line(exc)}); for PostgreSQL: pip install 'psycopg[binary]'") from None
    except OSError:
        raise  # the file system: the command's one line for write problems (exit 10)
    except sqlite3.Error as exc:
        raise StudyError(f"cannot open the study storage {shown}: {_first_line(exc)}") from None
    except Exception as exc:  # SQLAlchemy's errors: refused connection, bad URL, unknown dialect
        raise StudyError(f"cannot open the study storage {shown}: {_first_line(exc)}") from None


SCHEMA_ATTEMPTS = 5


def _schema_race(exc: BaseException) -> bool:
    """A table or the schema's version row made by another process while this one made them too."""
    text = str(exc).lower()
    return "already exists" in text or ("unique" in text and "version_info" in text) or "duplicate key" in text


def _first_line(exc: BaseException) -> str:
    from laptop_agents.logs import scrub

    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return scrub(text[0] if text else type(exc).__name__)


# -- sampler, pruner ------------------------------------------------------------------------


def trial_seed(seed: int, number: int) -> int:
    """A seed for trial ``number`` of a study seeded ``seed`` (stable across processes and machines)."""
    return (seed * 1_000_003 + number * 7_919 + 17) % (2**32)


class TrialSeeded(BaseSampler):
    """A sampler re-made for every trial with a seed from the study's seed and the trial's number.

    Why: the samplers draw from one random stream per process, so two workers
    seeded alike would propose the same points, and a resumed study would not
    continue the sequence. Seeding per trial number makes trial *k* depend only
    on the seed and the trials finished before it."""

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # the seed comes from the trial number, never from the process
        pass


def make_sampler(seed: int, startup_trials: int = 10) -> BaseSampler:
    def tpe(s: int) -> BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return TPESampler(seed=s, n_startup_trials=startup_trials)

    return TrialSeeded(tpe, seed)


def make_pruner(prune: bool) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0) if prune else optuna.pruners.NopPruner()


# -- the study ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepSpec:
    """A study's definition: the objective, how trials are chosen, how many."""

    objective: ObjectiveSpec
    kind: Literal["tpe", "grid"] = "tpe"
    budget: int = 100  # finished trials (complete or pruned) the study should have
    seed: int = 1
    signature: tuple[tuple[str, str], ...] = ()  # what must agree for another worker to join

    @property
    def grid(self) -> Sequence[Mapping[str, Any]]:
        return self.objective.space.grid


def open_study(storage: BaseStorage, name: str, spec: SweepSpec, *, where: str = "") -> tuple[optuna.Study, bool]:
    """Create the study, or join it when it exists (its signature must match). Returns (study, created)."""
    sampler = make_sampler(spec.seed)
    pruner = make_pruner(spec.objective.prune)
    with _quiet():
        try:
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                        pruner=pruner)
            created = True
        except DuplicatedStudyError:
            study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
            created = False
    if created:
        study.set_user_attr("signature", dict(spec.signature))
        study.set_user_attr("kind", spec.kind)
        if spec.kind == "grid":
            for i, combo in enumerate(spec.grid):
                study.enqueue_trial(dict(combo), user_attrs={"combo": i})
        study.set_user_attr("ready", True)
        return _atomic_queue(study), True
    if study.directions != [StudyDirection.MAXIMIZE]:
        raise StudyError(f"study {name!r}{where} is not a study of this program (its direction is not 'maximize')")
    deadline = time.monotonic() + 60
    while not study.user_attrs.get("ready"):  # its creator is still enqueuing the grid
        if time.monotonic() > deadline:
            raise StudyError(f"study {name!r}{where} was never finished by the process that created it; "
                             "use another --study name")
        time.sleep(0.5)
    theirs = study.user_attrs.get("signature") or {}
    for key, mine in spec.signature:
        if theirs.get(key) != mine:
            raise StudyError(
                f"study {name!r}{where} was made with {key} {theirs.get(key, '(none)')!s}, not {mine}: "
                "run it with the same settings to join it, or use another --study name")
    return _atomic_queue(study), False


def _storage(study: optuna.Study) -> Any:
    return study._storage  # the cached RDB storage Optuna wrapped (no public accessor)


def counts(study: optuna.Study) -> dict[TrialState, int]:
    storage, sid = _storage(study), study._study_id
    return {s: storage.get_n_trials(sid, state=s) for s in TrialState}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")
        warnings.filterwarnings("ignore", message=".*constraint.*")
        yield


# -- one worker ------------------------------------------------------------------------------------


class _Heartbeat:
    """Records the running trial's heartbeat now and then every ``interval`` seconds, from a thread."""

    def __init__(self, study: optuna.Study, trial_id: int, interval: float | None) -> None:
        self._storage = _storage(study)
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if self._interval is None:
            return
        self._storage.record_heartbeat(self._trial_id)  # at once: a trial with no heartbeat never goes stale
        self._thread = threading.Thread(target=self._run, name="study-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._interval is not None
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception:  # a lost connection: the next beat tries again; staleness is the safe failure
                continue

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _claim(storage: Any, trial_id: int) -> bool:
    """WAITING -> RUNNING for one worker only. On a database the check and the write are one
    conditional UPDATE: Optuna's own claim reads the state first, and SQLite ignores its
    ``FOR UPDATE`` (Python's sqlite3 even reads outside the transaction), so two workers that
    both read "waiting" both won the trial and the second crashed telling it."""
    backend = getattr(storage, "_backend", storage)
    engine = getattr(backend, "engine", None)
    if engine is None:  # in memory: one process, Optuna's claim runs under the storage's lock
        try:
            return bool(storage.set_trial_state_values(trial_id, state=TrialState.RUNNING))
        except UpdateFinishedTrialError:
            return False
    from optuna.storages._rdb import models
    from sqlalchemy import update

    table = models.TrialModel
    with engine.begin() as conn:
        done = conn.execute(update(table)
                            .where(table.trial_id == trial_id, table.state == TrialState.WAITING)
                            .values(state=TrialState.RUNNING, datetime_start=datetime.now()))  # Optuna's local time
    return done.rowcount == 1


def _pop_waiting_id(study: optuna.Study) -> int | None:
    """Claim the first waiting trial another worker has not claimed; its id, or None."""
    storage, sid = _storage(study), study._study_id
    for t in storage.get_all_trials(sid, deepcopy=False, states=(TrialState.WAITING,)):
        if _claim(storage, t._trial_id):
            return int(t._trial_id)
    return None


def _atomic_queue(study: optuna.Study) -> optuna.Study:
    """``study.ask()`` pops a re-queued trial with Optuna's read-then-write claim: give it ours."""
    setattr(study, "_pop_waiting_trial_id", lambda: _pop_waiting_id(study))  # noqa: B010 (a private hook)
    return study


def _pop_waiting(study: optuna.Study) -> optuna.Trial | None:
    """Take one waiting trial (atomically: another worker taking it first is skipped), or None."""
    trial_id = _pop_waiting_id(study)
    if trial_id is None:
        return None
    study._thread_local.cached_all_trials = None  # what Study.ask does: the sampler sees fresh trials
    return optuna.Trial(study, trial_id)


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue an interrupted trial's parameters again (as the stale-trial retry does)."""
    system_attrs = {"failed_trial": trial.number, "retry_history": [], **trial.system_attrs}
    system_attrs["retry_history"] = [*system_attrs["retry_history"], trial.number]
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k == "combo"}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=trial.params,
                                              distributions=trial.distributions, user_attrs=user_attrs,
                                              system_attrs=system_attrs))


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float],
              heartbeat_s: float | None) -> TrialState:
    """One trial start to finish; Ctrl-C fails it and puts it back in the queue, then goes on up."""
    with _Heartbeat(study, trial._trial_id, heartbeat_s):
        try:
            trial.set_user_attr("worker", worker_id())
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            requeue(study, _storage(study).get_trial(trial._trial_id))
            raise
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
    study.tell(trial, value)
    return TrialState.COMPLETE


def work(study: optuna.Study, objective: Callable[[optuna.Trial], float], spec: SweepSpec, *,
         heartbeat_s: float | None, poll_s: float = 1.0, stop: Callable[[], bool] = lambda: False,
         on_trial: Callable[[], None] | None = None) -> int:
    """Run trials until the study is done (see the module docstring); returns how many this worker ran."""
    grid = spec.kind == "grid"
    ran = 0
    while not stop():
        with _quiet():
            if heartbeat_s is not None:
                optuna.storages.fail_stale_trials(study)
            c = counts(study)
            finished = sum(c[s] for s in FINISHED)
            waiting, running = c[TrialState.WAITING], c[TrialState.RUNNING]
            if waiting > 0 or (not grid and finished + running < spec.budget):
                trial = _pop_waiting(study) if grid else study.ask()
                if trial is None:
                    continue
                run_trial(study, trial, objective, heartbeat_s)
                ran += 1
                if on_trial is not None:
                    on_trial()
                continue
        if running == 0 and (grid or finished >= spec.budget):
            break
        time.sleep(poll_s)  # the rest is being run by others: wait for them to finish or go stale
        if on_trial is not None:
            on_trial()
    return ran


# -- worker processes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerJob:
    """What a worker process gets (pickled through a pipe: the storage URL never shows in ``ps``)."""

    url: str
    study: str
    spec: SweepSpec
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    poll_s: float = 1.0


def worker_main(job: WorkerJob, ready: Any = None) -> None:
    """A worker process: Ctrl-C (or SIGINT from the parent) ends it after putting its trial back; a second
    SIGINT while it does so is ignored. ``ready`` (an event) is set once it can take trials."""
    stopping = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stopping.is_set():
            return
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(job.url, heartbeat_s=job.heartbeat_s)
        study, _ = open_study(storage, job.study, job.spec)
        objective = Objective(job.spec.objective)
        if ready is not None:
            ready.set()
        work(study, objective, job.spec, heartbeat_s=job.heartbeat_s, poll_s=job.poll_s, stop=stopping.is_set)
    except KeyboardInterrupt:
        os._exit(0)
    except UsageError as exc:
        print(f"worker {os.getpid()}: {exc}", flush=True, file=sys.stderr)
        os._exit(int(exc.exit_code))
    except Exception as exc:
        from laptop_agents.logs import scrub

        print(scrub(f"worker {os.getpid()}: crash: {type(exc).__name__}: {exc}"), flush=True, file=sys.stderr)
        os._exit(1)


@dataclass
class SweepOutcome:
    """How a sweep ended: done, interrupted, or with failed workers (their exit codes)."""

    interrupted: bool = False
    worker_codes: list[int] = field(default_factory=list)
    ran_here: int = 0

    @property
    def failed(self) -> list[int]:
        return [c for c in self.worker_codes if c not in (0, None)]


def run_sweep(study: optuna.Study, spec: SweepSpec, *, workers: int, url: str | None, name: str,
              heartbeat_s: int = DEFAULT_HEARTBEAT_S,
              data: tuple[Sequence[Candle], Sequence[FundingRate]] | None = None,
              on_progress: Callable[[], None] | None = None) -> SweepOutcome:
    """Work on ``study`` with ``workers`` processes: this one, plus ``workers - 1`` spawned worker
    processes (``url`` is then required: a storage they can share). Ctrl-C stops every worker (their
    trials go back in the queue) and returns with ``interrupted``."""
    out = SweepOutcome()
    if workers > 1 and url is None:
        raise StudyError("several workers need a storage they can share (a SQLite file or a database URL)")
    procs: list[Any] = []
    events: list[Any] = []
    if workers > 1:
        assert url is not None
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads and open connections
        job = WorkerJob(url=url, study=name, spec=spec, heartbeat_s=heartbeat_s)
        events = [ctx.Event() for _ in range(workers - 1)]
        procs = [ctx.Process(target=worker_main, args=(job, ev), name=f"la-worker-{i}", daemon=False)
                 for i, ev in enumerate(events)]
    try:
        for p in procs:
            p.start()
        objective = Objective(spec.objective, data)
        # Start together: the workers this process started take trials from the first one on (a worker
        # that fails to start ends, and is not waited for).
        while procs and not all(ev.is_set() or not p.is_alive() for ev, p in zip(events, procs, strict=True)):
            time.sleep(0.05)
        hb = float(heartbeat_s) if url is not None else None
        out.ran_here = work(study, objective, spec, heartbeat_s=hb, on_trial=on_progress)
        while any(p.is_alive() for p in procs):  # done here: the others finish their last trials
            if on_progress is not None:
                on_progress()
            for p in procs:
                p.join(timeout=0.5 / len(procs))
    except KeyboardInterrupt:
        out.interrupted = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    out.worker_codes = [p.exitcode if p.exitcode is not None else -1 for p in procs]
    if on_progress is not None:
        on_progress()
    return out


# -- reading a study back -----------------------------------------------------------------------------


def signature_of(items: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Settings as (key, text) pairs; text is compact JSON so a study remembers them as typed."""
    return tuple((k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":")))
                 for k, v in items.items())
