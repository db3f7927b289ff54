"""Search spaces from parameter models: built-in hints, a plug-in's own model, --space files, grids."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import optuna
import pytest
from pydantic import BaseModel, ConfigDict, Field

from laptop_agents.backtest.research.space import (
    BUILTIN_HINTS,
    Dim,
    SpaceError,
    grid_space,
    load_space_file,
    parse_space,
    resolve,
    space_from_params,
)
from laptop_agents.strategy.params import SmaCrossParams, SupervisorParams, parse_params, read_raw


@pytest.mark.parametrize("preset", ["default", "tight", "sma_cross"])
def test_builtin_presets_have_a_space_inside_their_bounds(preset: str) -> None:
    raw, where = read_raw(preset)
    params = parse_params(raw, "BTCUSDT", where)
    space = space_from_params(params)
    hints = BUILTIN_HINTS["supervisor" if isinstance(params, SupervisorParams) else "sma_cross"]
    assert [d.name for d in space.dims] == list(hints)
    for d in space.dims:  # both ends of every range are inside the fields' own bounds
        for leaf in resolve(type(params), d.name):
            if d.kind != "choice":
                assert d.low is not None and d.high is not None
                assert leaf.lower is not None and leaf.upper is not None
                assert leaf.lower <= d.low < d.high <= leaf.upper
    by_name = {d.name: d for d in space.dims}
    if preset == "sma_cross":
        assert by_name["fast"] == Dim("fast", "int", 3, 50)
        assert by_name["slow"] == Dim("slow", "int", 10, 300, 5)
    else:
        assert by_name["setups.pullback_ribbon.enabled"].choices == (False, True)
        assert by_name["setups.pullback_ribbon.entry_band_pct"].log


class _Gates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float = Field(0.5, ge=0.0, le=2.0, multiple_of=0.25)


class BreakoutParams(BaseModel):
    """What a user's plug-in strategy might declare: its own model, its own bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy: Literal["breakout"] = "breakout"
    lookback: int = Field(20, ge=5, le=200)
    exit_mode: Literal["stop", "trail", "time"] = "stop"
    use_volume: bool = True
    band: float = Field(0.01, gt=0, lt=0.1)
    cap: float | None = Field(None, gt=0, le=10)  # optional: not searched without a hint
    unbounded: float = 1.0  # no range: not searched
    equity: float = Field(10_000.0, gt=0, le=1e12)  # sizing: never searched
    gates: _Gates = _Gates()


def test_a_plugin_model_gives_its_space_from_its_field_constraints() -> None:
    space = space_from_params(BreakoutParams())
    dims = {d.name: d for d in space.dims}
    assert list(dims) == ["lookback", "exit_mode", "use_volume", "band", "gates.threshold"]
    assert dims["lookback"] == Dim("lookback", "int", 5, 200)
    assert dims["exit_mode"].choices == ("stop", "trail", "time")
    assert dims["use_volume"].choices == (False, True)
    # "above zero" is searched from a thousandth of the maximum, on a log scale (not from 5e-324)
    assert dims["band"].low == pytest.approx(1e-4) and dims["band"].log and dims["band"].high is not None
    assert dims["band"].high < 0.1  # gt / lt are open: the range stays inside
    assert not dims["lookback"].log  # 5 .. 200 spans less than two decades: linear
    assert dims["gates.threshold"] == Dim("gates.threshold", "float", 0.0, 2.0, 0.25)


class WideParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    period: int = Field(14, ge=1, le=1000)  # two decades or more: log scale
    cooldown: int = Field(10, ge=0, le=10_000)  # starts at 0: no log scale possible
    stop: float = Field(1.5, gt=0, le=20)
    floor: float = Field(0.5, ge=0.1, le=5)  # closed bounds are taken as they are


def test_ranges_from_bounds_alone_are_searched_where_they_make_sense() -> None:
    space = space_from_params(WideParams())
    assert space.dims == (Dim("period", "int", 1, 1000, None, True), Dim("cooldown", "int", 0, 10_000),
                          Dim("stop", "float", 0.02, 20.0, None, True), Dim("floor", "float", 0.1, 5.0))
    assert len(space.notes) == 1 and "WideParams declares no search hints" in space.notes[0]
    assert "stop: 0.02 .. 20 (log scale)" in space.lines()
    # the study's identity is the dims, not the advice
    assert "notes" not in space.to_json()
    # a hinted model or an explicit range is taken as it is, with no note
    assert not space_from_params(HintedParams()).notes
    explicit = parse_space({"stop": {"low": 0.5, "high": 20}, "period": {}}, WideParams(), "space file 's.yaml'")
    assert explicit.dims == (Dim("stop", "float", 0.5, 20.0), Dim("period", "int", 1, 1000, None, True))


class HintedParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fast: int = Field(10, ge=1, le=10_000, json_schema_extra={"search": {"low": 5, "high": 30, "step": 5}})
    slow: int = Field(50, ge=2, le=10_000, json_schema_extra={"search": {"low": 40, "high": 200}})
    mode: str = Field("a", json_schema_extra={"search": {"choices": ["a", "b"]}})
    other: int = Field(3, ge=1, le=9)  # not hinted: with hints present only hinted fields are searched


def test_hints_on_the_fields_win() -> None:
    space = space_from_params(HintedParams())
    assert space.dims == (Dim("fast", "int", 5, 30, 5), Dim("slow", "int", 40, 200), Dim("mode", "choice", choices=("a", "b")))
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    got = space.suggest(trial)
    assert got["fast"] in (5, 10, 15, 20, 25, 30) and 40 <= got["slow"] <= 200 and got["mode"] in ("a", "b")


def test_space_documents_narrow_and_are_checked() -> None:
    params = SmaCrossParams()
    space = parse_space({"fast": {"low": 5, "high": 20}, "slow": [50, 100, 200], "stop_bps": 80},
                        params, "space file 's.yaml'")
    assert space.dims == (Dim("fast", "int", 5, 20), Dim("slow", "choice", choices=(50, 100, 200)))
    assert space.fixed == (("stop_bps", 80),)
    assert parse_space({"slow": {}}, params, "s").dims == (Dim("slow", "int", 10, 300, 5),)  # the default range
    for doc, words in [
        ({"fast": {"low": 0, "high": 20}}, ["fast", "outside the parameter's bounds", "allowed: 1 .. 10000"]),
        ({"fast": {"low": 5.5, "high": 20}}, ["integer"]),
        ({"fast": {"low": 20, "high": 5}}, ["low 20 is above high 5"]),
        ({"fats": {"low": 1, "high": 5}}, ["unknown parameter 'fats'", "known names", "fast"]),
        ({"fast": {"lo": 1}}, ["unknown key 'lo'"]),
        ({"attach_stop": {"low": 0, "high": 1}}, ["not a number"]),
        ({"stop_bps": -5}, ["stop_bps = -5 is outside"]),
        ({"fast": []}, ["non-empty list"]),
        ([1, 2], ["must map parameter names"]),
    ]:
        with pytest.raises(SpaceError) as info:
            parse_space(doc, params, "space file 's.yaml'")
        text = str(info.value)
        assert "\n" not in text and text.startswith("space file 's.yaml'")
        for w in words:
            assert w in text, (w, text)


def test_space_file_yaml_and_flat_names_over_sections(tmp_path: Path) -> None:
    f = tmp_path / "space.yaml"
    f.write_text("stop_atr_mult: {low: 0.5, high: 2, step: 0.5}\nsweep.tp_r_mult: [1.5, 3]\nenabled: true\n")
    raw, where = read_raw("default")
    params = parse_params(raw, "BTCUSDT", where)
    space = load_space_file(f, params)
    assert space.dims == (Dim("stop_atr_mult", "float", 0.5, 2.0, 0.5), Dim("sweep.tp_r_mult", "choice", choices=(1.5, 3)))
    assert space.fixed == (("enabled", True),)
    with pytest.raises(SpaceError, match="cannot read it"):
        load_space_file(tmp_path / "missing.yaml", params)
    bad = tmp_path / "bad.yaml"
    bad.write_text("fast: [1, 2\n")
    with pytest.raises(SpaceError, match="space file"):
        load_space_file(bad, SmaCrossParams())


def test_grid_space_keeps_its_combinations_in_order() -> None:
    grid = [{"fast": 5, "slow": 20}, {"fast": 5, "slow": 40}, {"fast": 10, "slow": 20}, {"fast": 10, "slow": 40}]
    space = grid_space(grid)
    assert space.dims == (Dim("fast", "choice", choices=(5, 10)), Dim("slow", "choice", choices=(20, 40)))
    assert list(space.grid) == grid
