"""A user's strategy class, loaded by path (``--strategy FILE.py:ClassName``) or
from an installed package's entry point, through the real CLI: it runs in
backtest, replay and a mock session, its parameters come from its own model,
the store refuses a state of another strategy, and every broken variant is
one line and exit 2."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from laptop_agents.cli import main
from laptop_agents.exit_codes import ExitCode
from laptop_agents.sources.candle_files import write_candles
from laptop_agents.sources.synthetic import SyntheticMarket

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "strategies" / "ema_pullback.py"

# A tiny strategy that trades often (a mock session of a few minutes must trade).
FLIPPER = '''
from pydantic import Field
from laptop_agents.strategy.base import BaseStrategy, Parameters
from laptop_agents.strategy.indicators import SMA


class FlipParams(Parameters):
    every: int = Field(2, ge=1, description="bars between flips")
    stop_bps: float = Field(80.0, gt=0, description="stop distance in bps")


class Flipper(BaseStrategy[FlipParams]):
    """Flips long/short every few bars."""

    Params = FlipParams
    state_fields = {"side": 1}

    def indicators(self, p):
        return {"mean": SMA(2)}

    def decide(self, candle, account):
        if self.bar % self.params.every == 0 and not account.working_orders:
            self.side = -self.side
            self.enter(self.side, stop_bps=self.params.stop_bps, attach_stop=False, reason="flip")
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def candle_file(folder: Path, n: int = 3_000) -> Path:
    return write_candles(folder / "c.csv", SyntheticMarket(9, 1_704_067_200_000).candles(0, n))


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def events(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text().splitlines()]


def test_the_example_runs_by_path_in_backtest_and_replay_with_identical_results(
    tmp_path: Path, workspace: Path
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "pullback.py")
    params = write(folder, "fast.yaml", "fast: 5\nslow: 30\natr: 10\ncooldown: 2\n")
    data = candle_file(tmp_path)
    common = ["--strategy", f"{folder / 'pullback.py'}:EmaPullback", "--strategy-file", str(params)]
    assert main(["backtest", str(data), *common, "--no-report", "--run-id", "bt"]) == ExitCode.OK
    assert main(["replay", str(data), *common, "--run-id", "rp"]) == ExitCode.OK
    bt, rp = workspace / "runs" / "bt", workspace / "runs" / "rp"
    trades = (bt / "trades.csv").read_text()
    assert trades.count("\n") > 5, "the comparison needs trades"
    assert (rp / "trades.csv").read_text() == trades
    assert [e for e in events(rp) if e["kind"] != "session"] == events(bt)
    decisions = [e for e in events(bt) if e["kind"] == "decision"]
    assert decisions and {e["setup"] for e in decisions} == {"EmaPullback"}
    assert all(str(e["client_id"]).startswith("EmaPullback-") for e in decisions if "client_id" in e)
    summary = json.loads((bt / "summary.json").read_text())
    assert summary["strategy"] == "pullback.py:EmaPullback"
    # A parameter the model refuses: one line naming the file, the key and the rule.
    bad = write(folder, "bad.yaml", "fast: 50\nslow: 30\n")
    assert main(["backtest", str(data), *common[:3], str(bad)]) == ExitCode.CONFIG_ERROR
    # validate takes its parameter names; a paper session on the mock market runs it unchanged.
    assert main(["validate", str(data), *common, "--grid", "stop_atr=1,2;target_r=1.5", "--splits", "2",
                 "--jobs", "2", "--run-id", "va"]) == ExitCode.OK  # fmt: skip
    board = json.loads((workspace / "runs" / "va" / "leaderboard.json").read_text())
    assert board["strategy"] == "pullback.py:EmaPullback" and len(board["folds"]) == 2
    assert main(["run", "--source", "mock", "--speed", "600", "--warmup-bars", "40", "--duration", "5", *common,
                 "--run-id", "live"]) == ExitCode.OK  # fmt: skip
    live = events(workspace / "runs" / "live")
    assert [e["event"] for e in live if e["kind"] == "session"] == ["start", "stop"]
    assert not [e for e in live if e["kind"] == "agent_error"]


def test_the_docs_show_the_example_file_as_it_is() -> None:
    doc = (EXAMPLE.parents[2] / "docs" / "strategies.md").read_text(encoding="utf-8")
    block = doc.split("```python\n", 1)[1].split("```", 1)[0]
    assert block == EXAMPLE.read_text(encoding="utf-8")
    readme = (EXAMPLE.parents[2] / "README.md").read_text(encoding="utf-8")
    assert "docs/strategies.md" in readme


def test_a_user_strategy_in_a_mock_session_continues_after_a_restart_and_another_one_is_refused(
    tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "flipper.py", FLIPPER)
    run = ["run", "--source", "mock", "--speed", "600", "--warmup-bars", "10", "--duration", "10",
           "--strategy", f"{path}:Flipper"]  # fmt: skip
    assert main([*run, "--run-id", "one"]) == ExitCode.OK
    first = events(workspace / "runs" / "one")
    flips = [e for e in first if e["kind"] == "decision" and e["reason"] == "flip"]
    assert len(flips) >= 2 and any(e["kind"] == "fill" for e in first)
    assert not [e for e in first if e["kind"] == "agent_error"]
    summary = json.loads((workspace / "runs" / "one" / "summary.json").read_text())
    assert summary["strategy"] == "flipper.py:Flipper"
    # The state is the strategy's: a restart continues it (its bar count goes on) ...
    capsys.readouterr()
    assert main([*run, "--run-id", "two"]) == ExitCode.OK
    second = events(workspace / "runs" / "two")
    assert [e for e in second if e["kind"] == "decision"] and not [e for e in second if e["kind"] == "agent_error"]
    # ... and another strategy, or the same class with a differently shaped state, is refused (exit 14).
    capsys.readouterr()
    assert main([*run[:-1], "sma_cross", "--run-id", "three"]) == ExitCode.STORE_MISMATCH
    assert "flipper.py:Flipper" in one_line(capsys)
    path.write_text(FLIPPER.replace('state_fields = {"side": 1}', 'state_fields = {"side": 1, "n": 0}'))
    assert main([*run, "--run-id", "four"]) == ExitCode.STORE_MISMATCH
    assert "differently shaped configuration" in one_line(capsys)


BROKEN = {
    "syntax error": ("x.py:Flipper", "def decide(self:\n", "has a syntax error at line 1"),
    "import error": ("x.py:Flipper", "import no_such_module_here\n",
                     "could not be imported: ModuleNotFoundError: No module named 'no_such_module_here' (line 1)"),
    "error at import": ("x.py:Flipper", "\n\n1 / 0\n", "could not be imported: ZeroDivisionError: division by zero (line 3)"),
    "wrong class name": ("x.py:Flipperr", FLIPPER, "has no class 'Flipperr' (strategy classes in it: Flipper)"),
    "no class named": ("x.py", FLIPPER, "name the class to use, as"),
    "missing file": ("nope.py:Flipper", None, "strategy file"),
    "missing decide": ("x.py:Flipper", FLIPPER.replace("def decide", "def decid"),
                       "does not define decide(self, candle, account)"),
    "not a strategy": ("x.py:Thing", "class Thing:\n    def warmup(self, c): ...\n",
                       "not a strategy class: derive it from laptop_agents.strategy.base.BaseStrategy "
                       "(or define on_candle, on_funding, on_broker_event, snapshot_state, restore_state)"),
    "not a class": ("x.py:thing", "thing = 3\n", "is a int, not a class"),
    "no params model": ("x.py:Flipper", FLIPPER.replace("    Params = FlipParams\n", ""), "needs Params ="),
    "lax params model": ("x.py:Flipper", FLIPPER.replace("(Parameters)", "(BaseModel)").replace(
        "from pydantic import Field", "from pydantic import BaseModel, Field"), "must refuse unknown keys"),
    "bad default params": ("x.py:Flipper", FLIPPER.replace("Field(2, ge=1,", "Field(0, ge=1, validate_default=True,"),
                           "bad value every=0: must be >= 1"),
    "raises in __init__": ("x.py:Flipper", FLIPPER.replace('return {"mean": SMA(2)}', 'return {"mean": SMA(0)}'),
                           "building it failed: ValueError: SMA period must be an int >= 1, got 0"),
    "bad indicator": ("x.py:Flipper", FLIPPER.replace('return {"mean": SMA(2)}', 'return {"mean": 2}'),
                      "building it failed: ValueError: indicator 'mean' (int) needs update()"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_strategy_is_one_line_and_exit_2(case: str, tmp_path: Path, workspace: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    spec, text, message = BROKEN[case]
    if text is not None:
        write(tmp_path, "x.py", text)
    target = f"{tmp_path}/{spec}"
    assert main(["backtest", "--duration", "100", "--strategy", target]) == ExitCode.CONFIG_ERROR
    line = one_line(capsys)
    assert message in line, line
    assert f"{tmp_path}/x.py" in line or f"{tmp_path}/nope.py" in line, line
    assert not list((workspace / "runs").glob("*")), "nothing was started"


def test_the_line_shows_the_file_and_class_verbatim(tmp_path: Path, workspace: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """``x.py:Flipper: ...`` once printed as ``x.py🐬 ...``: the console read
    ``:Flipper:`` as an emoji code (``:flipper:`` is a dolphin)."""
    write(tmp_path, "x.py", FLIPPER.replace("def decide", "def decid"))
    for command in (["backtest", "--duration", "100"], ["validate", "--duration", "200"]):
        assert main([*command, "--strategy", f"{tmp_path}/x.py:Flipper"]) == ExitCode.CONFIG_ERROR
        assert f"strategy {tmp_path}/x.py:Flipper: the class does not define decide" in one_line(capsys)


@pytest.mark.parametrize("command", [
    ["run", "--source", "mock", "--duration", "1"],
    ["replay"],
    ["validate", "--duration", "200", "--grid", "every=2,3"],
    ["strategies"],
])
def test_every_command_refuses_a_broken_strategy_with_one_line(command: list[str], tmp_path: Path, workspace: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    write(tmp_path, "x.py", FLIPPER.replace("def decide", "def decid"))
    spec = f"{tmp_path}/x.py:Flipper"
    if command == ["replay"]:
        command = ["replay", str(candle_file(tmp_path, 200))]
    argv = [*command, spec] if command == ["strategies"] else [*command, "--strategy", spec]
    assert main(argv) == ExitCode.CONFIG_ERROR
    assert "does not define decide" in one_line(capsys)


def test_bad_parameters_from_a_file_and_unknown_cli_options(tmp_path: Path, workspace: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    spec = f"{write(tmp_path, 'flipper.py', FLIPPER)}:Flipper"
    cases = [
        ("every: 0\n", [], "bad value every=0: must be >= 1"),
        ("evry: 2\n", [], "unknown key 'evry'; allowed keys here: every, stop_bps, symbols"),
        ("symbols: {BTCUSDT: {every: -1}}\n", [], "bad value symbols.BTCUSDT.every=-1"),
        ("every: 2\n", ["--tp-r", "2"], "unknown parameter 'tp_r_mult' for strategy 'flipper.py:Flipper'"),
    ]
    for text, extra, message in cases:
        params = write(tmp_path, "p.yaml", text)
        argv = ["backtest", "--duration", "100", "--strategy", spec, "--strategy-file", str(params), *extra]
        assert main(argv) == ExitCode.CONFIG_ERROR, text
        line = one_line(capsys)
        assert message in line, line
    # --stop-bps is one of its parameters: accepted.
    assert main(["backtest", "--duration", "300", "--strategy", spec, "--stop-bps", "50", "--no-report"]) == 0


def test_strategies_lists_the_parameters_of_a_strategy_class(tmp_path: Path, workspace: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["strategies", f"{EXAMPLE}:EmaPullback"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"{EXAMPLE}:EmaPullback -- Buys dips to the fast EMA in an uptrend" in out
    for row in ("fast", "20", "integer 2 <= x <= 1000", "fast EMA in bars: the pullback level", "target_r", "cooldown"):
        assert row in out, row
    required = write(tmp_path, "req.py", FLIPPER.replace("Field(2, ge=1,", "Field(ge=1,"))
    assert main(["strategies", f"{required}:Flipper"]) == ExitCode.OK
    assert "(required)" in capsys.readouterr().out
    # ... and running it without a value for that parameter is one line.
    assert main(["backtest", "--duration", "100", "--strategy", f"{required}:Flipper"]) == ExitCode.CONFIG_ERROR
    assert "missing required key 'every'" in one_line(capsys)


def test_a_class_that_only_satisfies_the_protocol_runs(tmp_path: Path, workspace: Path) -> None:
    path = write(tmp_path, "proto.py", '''
        from laptop_agents.domain.contracts import StrategyOutput
        from laptop_agents.strategy.base import Parameters


        class Quiet:
            """Never trades; keeps a bar count as its state."""

            Params = Parameters

            def __init__(self, params, instrument, *, risk_pct, max_notional, max_leverage, name):
                self.name, self.bars = name, 0

            def warmup(self, candle):
                self.bars += 1

            def on_candle(self, candle, account):
                self.bars += 1
                return StrategyOutput([], [])

            def on_funding(self, funding): ...

            def on_broker_event(self, event):
                return []

            def snapshot_state(self):
                return ("quiet/1", self.bars)

            def restore_state(self, state):
                self.bars = state[1]
        ''')
    assert main(["backtest", "--duration", "300", "--strategy", f"{path}:Quiet", "--run-id", "q", "--no-report"]) == 0
    assert json.loads((workspace / "runs" / "q" / "summary.json").read_text())["strategy"] == "proto.py:Quiet"


def _install(site: Path, entry: str, module_text: str) -> None:
    """A minimal installed distribution on ``site``: a module and a dist-info
    whose entry_points.txt names ``entry`` in the laptop_agents.strategies group."""
    (site / "flipstrat.py").write_text(textwrap.dedent(module_text), encoding="utf-8")
    info = site / "flipstrat-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flipstrat\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[laptop_agents.strategies]\n{entry}\n", encoding="utf-8")


def test_an_installed_strategy_is_found_by_its_entry_point_name(tmp_path: Path, workspace: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Real discovery by importlib.metadata: a dist-info directory on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "flip = flipstrat:Flipper\nbroken = flipstrat:Nothing", FLIPPER)
    monkeypatch.syspath_prepend(str(site))
    assert main(["backtest", "--duration", "300", "--strategy", "flip", "--run-id", "ep", "--no-report"]) == 0
    bt = workspace / "runs" / "ep"
    assert json.loads((bt / "summary.json").read_text())["strategy"] == "flip"
    assert any(e["kind"] == "decision" and str(e["client_id"]).startswith("flip-") for e in events(bt))
    capsys.readouterr()
    assert main(["strategies"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "flip (installed) -- Flips long/short every few bars." in out and "every" in out
    assert "broken (installed) -- cannot be used:" in out
    assert main(["backtest", "--duration", "100", "--strategy", "broken"]) == ExitCode.CONFIG_ERROR
    line = one_line(capsys)
    assert "installed strategy 'broken' (flipstrat:Nothing) could not be imported: AttributeError" in line, line
    assert main(["backtest", "--duration", "100", "--strategy", "nosuch"]) == ExitCode.CONFIG_ERROR
    assert "FILE.py:ClassName or an installed strategy's name" in one_line(capsys)
