"""Optimize throughput: trials per minute on one year of 1-minute candles, one and two workers.

One year (525,600 candles) of the mock market (``SyntheticMarket``, the
``--source mock`` price process) is written to a Parquet file. The same
parameter sets (a grid, so every run scores exactly the same trials) are then
scored three ways:

1. one after another in this process, without any study (``Objective.evaluate``
   in a loop: the baseline, no storage, no scheduling);
2. as a study on the embedded SQLite storage with one worker;
3. the same study with two worker processes.

Each trial is a 2-fold walk-forward (train 70 %, test 30 % with the train
window as warm-up): about 1.7 x 525,600 candle steps through the Engine. The
figure that matters is the speed-up of two workers over one, on this 2-core
machine that other work shares; absolute times vary with its load (the
process CPU time of the sequential run is printed beside its wall time).

    .venv/bin/python bench/optimize_throughput.py [--candles N] [--trials N] [--strategy NAME]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import optuna

from laptop_agents.backtest.research.objective import Objective, ObjectiveSpec
from laptop_agents.backtest.research.space import grid_space
from laptop_agents.backtest.research.sweep import SweepSpec, open_storage, open_study, run_sweep
from laptop_agents.backtest.research.walkforward import DataSpec, load_spec_data
from laptop_agents.config import load_config
from laptop_agents.sources.candle_files import write_candles
from laptop_agents.sources.synthetic import SyntheticMarket

YEAR_1M = 525_600
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z

GRIDS = {
    "sma_cross": [{"fast": f, "slow": s} for f in (5, 10, 20, 30) for s in (60, 120, 240, 480)],
    "default": [{"stop_atr_mult": a, "tp_r_mult": b} for a in (1.0, 1.5, 2.0, 2.5) for b in (1.5, 2.0, 2.5, 3.0)],
}


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the spawned workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def study_run(spec: ObjectiveSpec, trials: int, workers: int, db: Path, data: object) -> tuple[float, float]:
    sweep = SweepSpec(spec, kind="grid", budget=trials)
    url = f"sqlite:///{db}"
    storage = open_storage(url)
    study, _ = open_study(storage, f"bench-{workers}", sweep)
    c0, t0 = cpu_s(), time.perf_counter()
    out = run_sweep(study, sweep, workers=workers, url=url, name=f"bench-{workers}", data=data)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    cpu = cpu_s() - c0
    done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    assert done == trials and not out.failed, (done, out)
    return elapsed, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=YEAR_1M)
    ap.add_argument("--trials", type=int, default=8, help="parameter sets per run (at most 16)")
    ap.add_argument("--strategy", default="sma_cross", choices=sorted(GRIDS))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = GRIDS[args.strategy][: args.trials]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="la-bench-opt-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        candles = SyntheticMarket(7, T0, 60_000).candles(0, args.candles)
        path = write_candles(root / "year.parquet", candles)
        print(f"generated {len(candles):,} one-minute candles of the mock market in {time.perf_counter() - t:.1f} s")
        config = load_config("backtest", {"strategy.name": args.strategy}).config
        spec = ObjectiveSpec(config_json=config.model_dump_json(), data=DataSpec(file=str(path), interval="1m"),
                             splits=2, train_frac=0.7, space=grid_space(grid), prune=False)
        data = load_spec_data(spec.data, spec.config_json)
        print(f"{args.strategy}: {len(grid)} trials of a 2-fold walk-forward "
              f"(~{1.7 * len(candles):,.0f} candle steps each)")

        objective = Objective(spec, data)
        c0, t0 = cpu_s(), time.perf_counter()
        for combo in grid:
            objective.evaluate(dict(combo))
        seq = time.perf_counter() - t0
        cpu = cpu_s() - c0
        rate = {"one after another (no study)": seq}
        print(f"  one after another (no study): {seq:7.1f} s = {len(grid) / seq * 60:6.2f} trials/min "
              f"(CPU {cpu:.1f} s = {cpu / len(grid):.2f} s per trial)")
        for workers in (1, 2):
            el, cpu = study_run(spec, len(grid), workers, root / f"study-{workers}.db", data)
            rate[f"study, {workers} worker{'s' if workers > 1 else ''}"] = el
            print(f"  study, {workers} worker{'s' if workers > 1 else ' '}:            {el:7.1f} s = "
                  f"{len(grid) / el * 60:6.2f} trials/min (CPU of all its processes {cpu:.1f} s = "
                  f"{cpu / len(grid):.2f} s per trial)")
        one, two = rate["study, 1 worker"], rate["study, 2 workers"]
        print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (at start {load0:.1f}): "
              "a speed-up needs a free core")
        print(f"speed-up: 2 workers / 1 worker = {one / two:.2f}x; 2 workers / one after another = {seq / two:.2f}x; "
              f"study overhead with 1 worker = {(one / seq - 1) * 100:+.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
