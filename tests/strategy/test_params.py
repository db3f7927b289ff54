"""Strategy files: presets with the spec's defaults, validation, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laptop_agents.config import AppConfig, RiskConfig, StrategyConfig, TradingConfig
from laptop_agents.engine import starting_equity
from laptop_agents.strategy import (
    SmaCross,
    SmaCrossParams,
    StrategyConfigError,
    Supervisor,
    SupervisorParams,
    build_strategy,
    load_strategy_params,
    strategy_names,
)
from laptop_agents.strategy.params import apply_overrides, parse_params


def sup(name: str = "default", symbol: str = "BTCUSDT", **kw: object) -> SupervisorParams:
    p = load_strategy_params(StrategyConfig(name=name, **kw), symbol)
    assert isinstance(p, SupervisorParams)
    return p


def write(tmp_path: Path, data: object, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else str(data), encoding="utf-8")
    return path


def test_names() -> None:
    assert strategy_names() == ["default", "tight", "sma_cross"]


def test_default_preset_has_the_spec_defaults() -> None:
    p = sup()
    assert p.engine.pending_trigger_max_bars == 24
    assert p.engine.derivatives_refresh_bars == 6
    assert p.engine.cooldown_bars == 5
    assert (p.derivatives_gates.no_trade_funding_8h, p.derivatives_gates.half_size_funding_8h) == (0.05, 0.03)
    assert p.derivatives_gates.halt_funding_8h == 0.1  # percent: |rate| >= 0.001 as a fraction
    r, s = p.setups.pullback_ribbon, p.setups.sweep_invalidation
    assert (r.entry_band_pct, r.stop_atr_mult, r.tp_r_mult) == (0.001, 1.5, 2.0)
    assert (s.eq_tolerance_pct, s.tp_r_mult, s.stop_atr_mult, s.min_vol_ratio, s.lookback_bars) == (
        0.0008, 2.0, 0.5, 0.5, 10,
    )
    assert s.require_cvd_confirm is False
    assert (p.risk.equity, p.risk.risk_pct, p.risk.rr_min) == (10_000, 1.0, 1.5)
    # The file's explicit values equal the model defaults: nothing hides in code.
    assert p == SupervisorParams()


def test_tight_is_tighter_and_has_a_symbol_override() -> None:
    d, t = sup(), sup("tight")
    assert t.risk.risk_pct < d.risk.risk_pct
    assert t.risk.rr_min > d.risk.rr_min
    assert t.setups.pullback_ribbon.stop_atr_mult < d.setups.pullback_ribbon.stop_atr_mult
    assert t.engine.pending_trigger_max_bars < d.engine.pending_trigger_max_bars
    assert sup("tight", "BTCUSD").risk.risk_pct == 0.25
    assert sup("tight", "btc/usdt").risk.risk_pct == 0.5


def test_sma_cross_preset() -> None:
    p = load_strategy_params(StrategyConfig(name="sma_cross"), "BTCUSDT")
    assert isinstance(p, SmaCrossParams)
    assert (p.fast, p.slow, p.stop_bps, p.attach_stop, p.tp_r_mult) == (10, 30, 100.0, False, None)


def test_unknown_key_is_one_line_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, {"setups": {"pullback_ribbon": {"stop_atr_mul": 2}}})
    with pytest.raises(StrategyConfigError) as ei:
        load_strategy_params(StrategyConfig(file=path), "BTCUSDT")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "unknown key 'setups.pullback_ribbon.stop_atr_mul'" in msg
    assert "stop_atr_mult" in msg  # the allowed keys are listed
    assert str(path) in msg


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"risk": {"risk_pct": 50}}, "bad value risk.risk_pct=50: must be <= 10"),
        ({"risk": {"risk_pct": 0}}, "bad value risk.risk_pct=0: must be > 0"),
        ({"setups": {"sweep_invalidation": {"lookback_bars": 1}}}, "setups.sweep_invalidation.lookback_bars=1"),
        ({"setups": {"sweep_invalidation": {"require_cvd_confirm": "maybe"}}}, "require_cvd_confirm='maybe'"),
        ({"market": {"block_regimes": ["SIDEWAYS"]}}, "market.block_regimes.0='SIDEWAYS'"),
        ({"strategy": "martingale"}, "bad value strategy='martingale': allowed: 'supervisor', 'sma_cross'"),
        (
            {"derivatives_gates": {"half_size_funding_8h": 0.08}},
            "need half_size_funding_8h <= no_trade_funding_8h <= halt_funding_8h",
        ),
        ({"market": {"ema_fast": 60}}, "need ema_fast < ema_slow"),
    ],
)
def test_bad_values_are_one_line_with_what_is_allowed(tmp_path: Path, data: dict, needle: str) -> None:
    with pytest.raises(StrategyConfigError) as ei:
        load_strategy_params(StrategyConfig(file=write(tmp_path, data)), "BTCUSDT")
    assert needle in str(ei.value)
    assert "\n" not in str(ei.value)


def test_sma_cross_validation(tmp_path: Path) -> None:
    with pytest.raises(StrategyConfigError, match="need fast < slow"):
        load_strategy_params(StrategyConfig(file=write(tmp_path, {"strategy": "sma_cross", "fast": 30, "slow": 10})), "BTCUSDT")
    with pytest.raises(StrategyConfigError, match="unknown key 'rr_min'"):
        load_strategy_params(StrategyConfig(file=write(tmp_path, {"strategy": "sma_cross", "rr_min": 2})), "BTCUSDT")


def test_symbol_overrides_are_applied_and_all_validated(tmp_path: Path) -> None:
    data = {"risk": {"risk_pct": 2.0}, "symbols": {"btc/usd": {"risk": {"risk_pct": 0.5}, "engine": {"cooldown_bars": 9}}}}
    path = write(tmp_path, data)
    inverse = load_strategy_params(StrategyConfig(file=path), "BTCUSD")
    linear = load_strategy_params(StrategyConfig(file=path), "BTCUSDT")
    assert isinstance(inverse, SupervisorParams) and isinstance(linear, SupervisorParams)
    assert (inverse.risk.risk_pct, inverse.engine.cooldown_bars) == (0.5, 9)
    assert (linear.risk.risk_pct, linear.engine.cooldown_bars) == (2.0, 5)
    # A bad value in another symbol's section is still an error.
    bad = write(tmp_path, {"symbols": {"BTCUSD": {"risk": {"rr_min": -1}}}}, "bad.json")
    with pytest.raises(StrategyConfigError, match=r"symbols\.BTCUSD\.risk\.rr_min=-1"):
        load_strategy_params(StrategyConfig(file=bad), "BTCUSDT")
    unknown = write(tmp_path, {"symbols": {"ETHUSDT": {}}}, "eth.json")
    with pytest.raises(StrategyConfigError, match="ETHUSDT"):
        load_strategy_params(StrategyConfig(file=unknown), "BTCUSDT")


def test_yaml_file_and_name_as_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("strategy: sma_cross\nfast: 5\nslow: 20\n", encoding="utf-8")
    p = load_strategy_params(StrategyConfig(name=str(path)), "BTCUSDT")
    assert isinstance(p, SmaCrossParams) and (p.fast, p.slow) == (5, 20)


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(StrategyConfigError, match="unknown strategy 'fancy': use one of default, tight, sma_cross"):
        load_strategy_params(StrategyConfig(name="fancy"), "BTCUSDT")
    with pytest.raises(StrategyConfigError, match="does not exist"):
        load_strategy_params(StrategyConfig(name=str(tmp_path / "nope.json")), "BTCUSDT")
    broken = tmp_path / "broken.json"
    broken.write_text("{nope", encoding="utf-8")
    with pytest.raises(StrategyConfigError, match="not valid JSON"):
        load_strategy_params(StrategyConfig(file=broken), "BTCUSDT")
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(StrategyConfigError, match="must hold a mapping of parameters, got a list"):
        load_strategy_params(StrategyConfig(file=listy), "BTCUSDT")


def test_cli_stop_bps_and_tp_r() -> None:
    p = sup(stop_bps=40.0, tp_r=3.0)
    assert p.setups.pullback_ribbon.stop_bps == p.setups.sweep_invalidation.stop_bps == 40.0
    assert p.setups.pullback_ribbon.tp_r_mult == p.setups.sweep_invalidation.tp_r_mult == 3.0
    s = load_strategy_params(StrategyConfig(name="sma_cross", stop_bps=25.0, tp_r=2.0), "BTCUSDT")
    assert isinstance(s, SmaCrossParams)
    assert (s.stop_bps, s.attach_stop, s.tp_r_mult) == (25.0, True, 2.0)


def test_flat_and_dotted_overrides() -> None:
    base = SupervisorParams()
    p = apply_overrides(base, {"stop_atr_mult": 1.0, "sweep.tp_r_mult": 3, "lookback_bars": 20.0})
    assert isinstance(p, SupervisorParams)
    assert p.setups.pullback_ribbon.stop_atr_mult == p.setups.sweep_invalidation.stop_atr_mult == 1.0
    assert p.setups.sweep_invalidation.tp_r_mult == 3.0 and p.setups.pullback_ribbon.tp_r_mult == 2.0
    assert p.setups.sweep_invalidation.lookback_bars == 20 and isinstance(p.setups.sweep_invalidation.lookback_bars, int)
    q = apply_overrides(base, {"setups.pullback_ribbon.tp_r_mult": 4, "gates.no_trade_funding_8h": 0.06})
    assert isinstance(q, SupervisorParams)
    assert q.setups.pullback_ribbon.tp_r_mult == 4 and q.derivatives_gates.no_trade_funding_8h == 0.06
    assert base.setups.pullback_ribbon.stop_atr_mult == 1.5  # the original is untouched
    with pytest.raises(StrategyConfigError, match="unknown parameter 'stop_atr_mul' .* known names: .*stop_atr_mult"):
        apply_overrides(base, {"stop_atr_mul": 1})
    with pytest.raises(StrategyConfigError, match="unknown parameter 'sweep.nope'"):
        apply_overrides(base, {"sweep.nope": 1})
    with pytest.raises(StrategyConfigError, match=r"bad value setups\.pullback_ribbon\.stop_atr_mult=-1"):
        apply_overrides(base, {"stop_atr_mult": -1})
    with pytest.raises(StrategyConfigError, match="unknown parameter 'stop_atr_mult' for strategy 'sma_cross'"):
        apply_overrides(SmaCrossParams(), {"stop_atr_mult": 1})
    assert apply_overrides(SmaCrossParams(), {"fast": 5}).fast == 5  # type: ignore[union-attr]


def test_build_strategy_and_starting_equity() -> None:
    cfg = AppConfig()
    s = build_strategy(cfg)
    assert isinstance(s, Supervisor) and s.name == "default"
    assert s.execution_risk_sentinel.risk_pct == 1.0
    assert starting_equity(cfg, s) == 10_000.0
    cfg2 = AppConfig(risk=RiskConfig(risk_pct=0.3, starting_equity=2_500), trading=TradingConfig(symbol="BTCUSD"),
                     strategy=StrategyConfig(name="tight"))
    s2 = build_strategy(cfg2, overrides={"rr_min": 3})
    assert isinstance(s2, Supervisor)
    assert s2.execution_risk_sentinel.risk_pct == 0.3  # risk config beats the file (0.25 for BTCUSD)
    assert s2.risk_gate.rr_min == 3
    assert s2.instrument.symbol == "BTCUSD"
    assert starting_equity(cfg2, s2) == 2_500
    sma = build_strategy(AppConfig(strategy=StrategyConfig(name="sma_cross")))
    assert isinstance(sma, SmaCross)
    with pytest.raises(StrategyConfigError):
        build_strategy(cfg, overrides={"fast": 3})


def test_parse_params_defaults_when_empty() -> None:
    assert parse_params({}, "BTCUSDT") == SupervisorParams()
