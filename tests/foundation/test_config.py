from __future__ import annotations

from pathlib import Path

import pytest

from laptop_agents.config import ConfigError, effective_rows, load_config


def test_defaults_and_profile() -> None:
    loaded = load_config("paper", environ={})
    cfg = loaded.config
    assert cfg.trading.symbol == "BTCUSDT"
    assert cfg.trading.execution_mode == "paper"
    assert cfg.system.stale_timeout_s == 60
    assert loaded.sources["trading.execution_mode"] == "profile paper"
    assert loaded.sources["risk.max_leverage"] == "default"
    assert cfg.error_budget() == max(20, int(2 * cfg.trading.duration_min))


def test_precedence_cli_over_env_over_profile() -> None:
    env = {"LA_TRADING__INTERVAL": "5m", "LA_RISK__RISK_PCT": "0.5"}
    loaded = load_config("paper", {"risk.risk_pct": 0.25, "trading.symbol": None}, environ=env)
    assert loaded.config.trading.interval == "5m"
    assert loaded.sources["trading.interval"] == "env LA_TRADING__INTERVAL"
    assert loaded.config.risk.risk_pct == 0.25
    assert loaded.sources["risk.risk_pct"] == "cli"
    # A flag that was not given (None) does not override.
    assert loaded.config.trading.symbol == "BTCUSDT"


def test_symbol_normalised_in_config() -> None:
    assert load_config("paper", {"trading.symbol": "btc/usdt"}, environ={}).config.trading.symbol == "BTCUSDT"


def _one_line(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_out_of_range_value_names_key_value_and_bound() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config("paper", {"risk.risk_pct": 150.0}, environ={})
    text = _one_line(exc)
    assert "risk.risk_pct" in text and "150" in text and "<= 10" in text


def test_bad_choice_names_allowed_values() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config("paper", {"trading.execution_mode": "yolo"}, environ={})
    text = _one_line(exc)
    assert "trading.execution_mode" in text and "'paper'" in text and "'live'" in text


def test_bad_symbol_in_env() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config("paper", environ={"LA_TRADING__SYMBOL": "DOGEUSDT"})
    assert "DOGEUSDT" in _one_line(exc)


def test_unknown_key_in_profile_file(tmp_path: Path) -> None:
    profile = tmp_path / "mine.yaml"
    profile.write_text("risk:\n  risk_pct: 1.0\n  leverage_yolo: 100\n")
    with pytest.raises(ConfigError) as exc:
        load_config(str(profile), environ={})
    text = _one_line(exc)
    assert "risk.leverage_yolo" in text and "unknown" in text and "max_leverage" in text


def test_unknown_section_and_env_key() -> None:
    with pytest.raises(ConfigError, match="unknown config section"):
        load_config("paper", environ={"LA_NOPE__X": "1"})
    with pytest.raises(ConfigError, match="unknown config key risk.nope"):
        load_config("paper", environ={"LA_RISK__NOPE": "1"})


def test_unknown_profile_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config("staging", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("risk: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_config(str(bad), environ={})


def test_live_switch_needs_live_mode() -> None:
    with pytest.raises(ConfigError, match="live_enabled"):
        load_config("paper", {"trading.live_enabled": True}, environ={})


def test_config_show_masks_secrets() -> None:
    env = {"BITUNIX_API_KEY": "abcdefghijkl-key", "BITUNIX_API_SECRET": "zyxwvu-secret"}
    rows = effective_rows(load_config("paper", environ={}), environ=env)
    text = repr(rows)
    assert "abcdefghijkl-key" not in text and "zyxwvu-secret" not in text
    assert ("env.BITUNIX_API_KEY", "***set***", "env") in rows


def test_console_keys_validated_and_notify_urls_never_shown_whole() -> None:
    from laptop_agents.config import ConfigError, effective_rows, load_config

    loaded = load_config("paper", {"system.notify_urls": ["tgram://123456:SECRETBOTTOKEN/987"],
                                   "system.dashboard_host": "0.0.0.0", "system.daily_summary_hour_utc": 7},
                         environ={})
    assert loaded.config.system.dashboard_host == "0.0.0.0" and loaded.config.system.daily_summary_hour_utc == 7
    rows = {k: v for k, v, _ in effective_rows(loaded, environ={})}
    assert "SECRETBOTTOKEN" not in rows["system.notify_urls"] and "tgram://" in rows["system.notify_urls"]
    env = load_config("paper", environ={"LA_SYSTEM__NOTIFY_URLS": "json://a/x, ntfy://t"})
    assert env.config.system.notify_urls == ["json://a/x", "ntfy://t"]
    for key, value, needle in [("system.notify_urls", ["no-scheme"], "not a notification URL"),
                               ("system.dashboard_host", "http://x/", "host name or an IP"),
                               ("system.daily_summary_hour_utc", 24, "<= 23"),
                               ("system.dashboard_port", 70000, "<= 65535")]:
        with pytest.raises(ConfigError) as err:
            load_config("paper", {key: value}, environ={})
        assert needle in str(err.value) and len(str(err.value).splitlines()) == 1
