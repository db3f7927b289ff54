"""``laptop-agents optimize FILE``: a parameter study on the walk-forward objective.

On one laptop: ``optimize year.parquet`` creates (or resumes) a study in
``<workspace>/studies.db`` and runs it to ``--trials`` finished trials with
``--workers`` processes. On several machines: the same command with
``--study NAME --storage postgresql://host/db`` on each machine joins one
study; each machine needs the same candle file (the study checks a digest of
it) and the same settings (checked too). Ctrl-C stops cleanly; the same
command resumes. Without ``--study`` the study's name is made from the
strategy, the data and a digest of the settings, so the same command always
continues the same study and a changed setting starts another.

Outputs in ``<workspace>/runs/<run_id>/``: ``leaderboard.csv``, ``study.json``
(settings, counts, best trial, overfitting check), ``best-strategy.yaml`` (a
strategy file ``backtest``/``run --strategy-file`` take as is) and
``study.html``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from laptop_agents.backtest.commands import claim_run_id, load_data, time_options
from laptop_agents.backtest.research.objective import METRICS, Objective, ObjectiveSpec
from laptop_agents.backtest.research.overfit import Overfitting
from laptop_agents.backtest.research.report import write_study_report
from laptop_agents.backtest.research.results import (
    BEST_STRATEGY,
    LEADERBOARD_CSV,
    STUDY_HTML,
    STUDY_JSON,
    Row,
    best_row,
    leaderboard_rows,
    overfitting,
    state_counts,
    write_best_strategy,
    write_leaderboard_csv,
    write_study_json,
)
from laptop_agents.backtest.research.space import Space, grid_space, load_space_file, space_from_params
from laptop_agents.backtest.research.sweep import (
    DEFAULT_HEARTBEAT_S,
    SweepSpec,
    mask_url,
    open_storage,
    open_study,
    run_sweep,
    signature_of,
    storage_url,
)
from laptop_agents.backtest.research.walkforward import DataSpec, data_fingerprint, make_folds
from laptop_agents.backtest.validate import parse_grid
from laptop_agents.config import AppConfig
from laptop_agents.context import CommandContext
from laptop_agents.domain.errors import LaptopAgentsError, UsageError
from laptop_agents.exit_codes import ExitCode
from laptop_agents.logs import scrub
from laptop_agents.strategy import build_strategy, load_strategy_params

DEFAULT_TRIALS = 100
DEFAULT_MIN_TRADES = 10
DEFAULT_MAX_DRAWDOWN = 30.0


class _Usage(UsageError):
    """A bad optimize option (private: one line, exit 2)."""


def _out() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=160)


def _line(console: Console, text: str, style: str | None = None) -> None:
    console.print(scrub(text), markup=False, highlight=False, soft_wrap=True, style=style)


def _opt(ctx: CommandContext, name: str, default: Any) -> Any:
    v = getattr(ctx.args, name, None)
    return default if v is None else v


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise _Usage(message)


def _label(config: AppConfig) -> str:
    return str(config.strategy.file) if config.strategy.file is not None else config.strategy.name


def choose_space(ctx: CommandContext, config: AppConfig) -> tuple[Space, Literal["tpe", "grid"]]:
    """The search space and the sampler kind: ``--grid`` (every combination once), ``--space FILE``,
    or the strategy's own parameter model."""
    params = load_strategy_params(config.strategy, config.trading.symbol)
    grid_text = getattr(ctx.args, "grid", None)
    space_file = getattr(ctx.args, "space", None)
    _check(not (grid_text and space_file), "give --grid or --space, not both")
    if grid_text:
        grid = parse_grid(grid_text)
        for combo in grid:
            build_strategy(config, overrides=combo)  # a bad name or value: one line before any work
        return grid_space(grid), "grid"
    if space_file:
        return load_space_file(Path(space_file).expanduser(), params), "tpe"
    return space_from_params(params), "tpe"


def _study_name(config: AppConfig, file: Path | None, signature: tuple[tuple[str, str], ...]) -> str:
    digest = hashlib.sha256(json.dumps(signature).encode()).hexdigest()[:8]
    data = file.stem if file is not None else f"mock{config.trading.seed}"
    raw = f"{Path(_label(config)).stem}-{data}-{config.trading.symbol}-{config.trading.interval}-{digest}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)[:120]


class _Progress:
    """A rich progress bar with the best value so far, fed by polling the study (any worker's trials)."""

    def __init__(self, study: Any, budget: int, metric: str, enabled: bool) -> None:
        self.study, self.budget, self.metric = study, budget, metric
        self.prog: Any = None
        self._last = 0.0
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.prog = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=False)
            self.task = self.prog.add_task("study", total=budget, info="")
            self.prog.start()

    def refresh(self) -> None:
        if self.prog is None or time.monotonic() - self._last < 0.5:
            return
        self._last = time.monotonic()
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        done = sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        pruned = sum(1 for t in trials if t.state == TrialState.PRUNED)
        feasible = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("feasible")]
        best = max(feasible, key=lambda t: (t.value, -t.number), default=None)
        info = (f"best {self.metric} {best.value:.4g} (trial {best.number})" if best is not None
                else "no feasible trial yet") + f" · {running} running · {pruned} pruned"
        self.prog.update(self.task, completed=min(done, self.budget), info=info)

    def stop(self) -> None:
        if self.prog is not None:
            self._last = 0.0
            self.refresh()
            self.prog.stop()


def cmd_optimize(ctx: CommandContext) -> int:
    """Run (or join, or resume) a study; write the leaderboard, the best strategy file and the report."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = _out()
    err = Console(stderr=True)
    args = ctx.args
    try:
        config = ctx.config
        build_strategy(config)  # a bad strategy file fails before any data is read
        metric = _opt(ctx, "metric", "sharpe")
        trials = int(_opt(ctx, "trials", DEFAULT_TRIALS))
        workers = int(_opt(ctx, "workers", 1))
        min_trades = int(_opt(ctx, "min_trades", DEFAULT_MIN_TRADES))
        max_dd = float(_opt(ctx, "max_drawdown", DEFAULT_MAX_DRAWDOWN))
        heartbeat = int(_opt(ctx, "heartbeat", DEFAULT_HEARTBEAT_S))
        seed = int(_opt(ctx, "sampler_seed", 1))
        splits = int(_opt(ctx, "splits", 4))
        train_frac = float(_opt(ctx, "train_frac", 0.7))
        _check(metric in METRICS, f"bad --metric {metric!r}: allowed: {', '.join(METRICS)}")
        _check(trials >= 1, f"bad --trials {trials}: must be >= 1")
        _check(1 <= workers <= 256, f"bad --workers {workers}: must be 1 to 256")
        _check(min_trades >= 0, f"bad --min-trades {min_trades}: must be >= 0")
        _check(0 < max_dd <= 100, f"bad --max-drawdown {max_dd:g}: must be a percent above 0 and at most 100")
        _check(1 <= heartbeat <= 3600, f"bad --heartbeat {heartbeat}: must be 1 to 3600 seconds")
        _check(seed >= 0, f"bad --sampler-seed {seed}: must be >= 0")
        space, kind = choose_space(ctx, config)
        config, candles, funding, data_report, desc, file = load_data(ctx, config, err)
        _check(len(candles) > 0, "no candles to optimize on")
        make_folds(len(candles), splits, train_frac)  # GridError: one line
        spec = DataSpec(file=str(file.resolve()) if file else None, strict=bool(getattr(args, "strict", False)),
                        interval=config.trading.interval if file else None, **time_options(ctx))
        funding_rate = getattr(args, "funding_rate", None)
        objective = ObjectiveSpec(
            config_json=config.model_dump_json(), data=spec, splits=splits, train_frac=train_frac, space=space,
            constant_funding=funding_rate, metric=metric, min_trades=min_trades, max_drawdown_pct=max_dd,
            prune=not getattr(args, "no_prune", False),
        )
        params = load_strategy_params(config.strategy, config.trading.symbol)
        signature = signature_of({
            "strategy": f"{type(params).__name__} {hashlib.sha256(params.model_dump_json().encode()).hexdigest()[:16]}",
            "market": f"{config.trading.symbol} {config.trading.interval}",
            "data": f"{len(candles)} candles {data_fingerprint(candles)}",
            "risk": config.risk.model_dump(mode="json"), "broker": config.broker.model_dump(mode="json"),
            "folds": f"{splits} folds, train share {train_frac:g}", "funding": funding_rate,
            "metric": metric, "constraints": {"min_trades": min_trades, "max_drawdown_pct": max_dd},
            "space": space.to_json(), "sampler": kind, "seed": seed,
        })
        budget = len(space.grid) if kind == "grid" else trials
        sweep = SweepSpec(objective, kind=kind, budget=budget, seed=seed, signature=signature)
        url = storage_url(getattr(args, "storage", None), ctx.workspace.root)
        name = getattr(args, "study", None) or _study_name(config, file, signature)
        _check(bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}", name)),
               f"bad --study {name!r}: use 1-120 letters, digits, '.', '_' or '-'")
        shown = mask_url(url)
        storage = open_storage(url, heartbeat_s=heartbeat)
        study, created = open_study(storage, name, sweep, where=f" in {shown}")
        counts = state_counts(study)
        _line(err, f"{desc}; {len(candles):,} candles, {splits} folds", "dim")
        _line(err, f"study {name} in {shown}: {'created' if created else 'joined'}, "
                   f"{counts['complete'] + counts['pruned']} of {budget} trials finished, {counts['running']} running"
                   + (f"; {workers} workers here" if workers > 1 else ""), "dim")
        for line in space.lines():
            _line(err, f"  {line}", "dim")
        for note in space.notes:
            _line(err, f"note: {note}", "yellow")
        ctx.log.debug("optimize start", extra={"fields": {"study": name, "storage": shown, "budget": budget,
                                                         "workers": workers, "created": created}})
        progress = _Progress(study, budget, metric, enabled=sys.stderr.isatty())
        try:
            outcome = run_sweep(study, sweep, workers=workers, url=url, name=name, heartbeat_s=heartbeat,
                                data=(candles, funding), on_progress=progress.refresh)
        finally:
            progress.stop()
        run_id = claim_run_id(ctx, "optimize", _label(config))
        run_dir = ctx.workspace.run_dir(run_id)
        rows = leaderboard_rows(study)
        best = best_row(rows)
        over = overfitting(study, metric, best)
        best_runs: list[Any] = []
        reproduced = None
        if best is not None:
            check = Objective(objective, (candles, funding)).evaluate(dict(best.params), keep=True)
            best_runs = check.runs
            reproduced = check.value == best.value
        doc = _document(name, shown, config, desc, data_report, objective, kind, budget, seed, study, rows, best,
                        over, reproduced)
        write_leaderboard_csv(rows, run_dir / LEADERBOARD_CSV)
        write_study_json(doc, run_dir / STUDY_JSON)
        if best is not None:
            write_best_strategy(config, best, name, metric, run_dir / BEST_STRATEGY)
        if not getattr(args, "no_report", False):
            write_study_report(run_dir / STUDY_HTML, study, doc, rows, best_runs, over,
                               lambda a, b: [c.ts for c in candles[a:b]], plotly=config.system.report_plotly)
    except LaptopAgentsError as exc:
        from laptop_agents.strategy import StrategyConfigError

        code = getattr(exc, "code", None)
        prefix = "strategy error: " if isinstance(exc, StrategyConfigError) else ""
        _line(err, prefix + str(exc))
        return int(code if isinstance(code, int) else exc.exit_code)
    except OSError as exc:
        from laptop_agents.fileio import problem

        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _line(err, f"cannot write the study results: {problem(exc)}{where}")
        return ExitCode.DISK_FULL
    _print_results(out, doc, rows, best, over, run_dir, int(_opt(ctx, "top", 10)))
    if outcome.interrupted:
        _line(err, f"interrupted: the study keeps its {doc['counts']['complete'] + doc['counts']['pruned']} finished "
                   "trials; run the same command again to resume it")
        return ExitCode.OK
    if outcome.failed:
        _line(err, f"{len(outcome.failed)} worker process(es) failed (exit {', '.join(map(str, outcome.failed))})")
        return outcome.failed[0] if outcome.failed[0] in (ExitCode.CONFIG_ERROR, ExitCode.BAD_INPUT) else ExitCode.CRASH
    ctx.log.info("optimize done", extra={"fields": {"study": name, "best": best.value if best else None}})
    return ExitCode.OK


def _document(name: str, shown: str, config: AppConfig, desc: str, data_report: Any, objective: ObjectiveSpec,
              kind: str, budget: int, seed: int, study: Any, rows: list[Row], best: Row | None, over: Overfitting,
              reproduced: bool | None) -> dict[str, Any]:
    return {
        "mode": "optimize", "study": name, "storage": shown, "strategy": _label(config),
        "symbol": config.trading.symbol, "interval": config.trading.interval, "source": desc,
        "metric": objective.metric, "data_report": data_report,
        "settings": {
            "metric": objective.metric, "sampler": kind, "budget (finished trials)": budget, "sampler seed": seed,
            "folds": objective.splits, "train share": objective.train_frac, "min test trades": objective.min_trades,
            "max test drawdown %": objective.max_drawdown_pct, "pruning": objective.prune,
            "funding rate": objective.constant_funding, "space": "; ".join(objective.space.lines()),
        },
        "space": objective.space.to_json(),
        "counts": state_counts(study),
        "best": None if best is None else {
            "trial": best.number, "value": best.value, "train_value": best.train_value, "trades": best.trades,
            "worst_drawdown_pct": best.worst_drawdown_pct, "params": best.params, "folds": best.folds,
            "reproduced": reproduced,
        },
        "overfitting": over.to_dict(),
        "leaderboard": [{"trial": r.number, "state": r.state, "value": r.value, "train_value": r.train_value,
                         "trades": r.trades, "feasible": r.feasible, "params": r.params, "note": r.note}
                        for r in rows[:100]],
    }


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:,.4g}" if isinstance(v, float) else str(v)


def _print_results(out: Console, doc: dict[str, Any], rows: list[Row], best: Row | None, over: Overfitting,
                   run_dir: Path, top: int) -> None:
    names = sorted({n for r in rows for n in r.params})
    t = Table(title=f"study {doc['study']}: best {min(top, len(rows))} of {len(rows)} finished trials "
                    f"(out-of-sample {doc['metric']})", title_justify="left")
    for col in ("#", "trial", "value", "train", "trades", "worst DD %", "ok", *[n.split(".")[-1] for n in names]):
        t.add_column(col, justify="right", no_wrap=True)
    for i, r in enumerate(rows[:top], 1):
        t.add_row(str(i), str(r.number), _f(r.value) if r.state == "COMPLETE" else r.state.lower(), _f(r.train_value),
                  _f(r.trades), _f(r.worst_drawdown_pct), "yes" if r.feasible else "no",
                  *(_f(r.params.get(n)) for n in names))
    out.print(t)
    c = doc["counts"]
    _line(out, f"trials: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed, "
               f"{c['running']} running, {c['waiting']} waiting")
    if best is None:
        _line(out, "no complete trial meets the constraints (--min-trades, --max-drawdown) yet")
    else:
        _line(out, f"best: trial {best.number}, out-of-sample {doc['metric']} {_f(best.value)} "
                   f"(in-sample {_f(best.train_value)}), {best.trades} test trades"
                   + ("" if doc["best"]["reproduced"] else " -- NOT reproduced by a re-run: please report this"))
    _line(out, f"overfitting check: deflated Sharpe ratio {_f(over.dsr)}, probability of backtest overfitting "
               f"{_f(over.pbo)} ({over.trials} trials tried)")
    for w in over.warnings:
        _line(out, f"warning: {w}", "yellow")
    for name in (LEADERBOARD_CSV, STUDY_JSON, BEST_STRATEGY, STUDY_HTML):
        if (run_dir / name).exists():
            _line(out, f"{name}: {run_dir / name}")
