"""Configuration: pydantic models, YAML profiles, environment and CLI overrides.

Precedence, highest first: CLI flag > environment (``LA_<SECTION>__<KEY>``) >
profile YAML > model defaults. Every value is validated up front; an unknown
key or a bad value becomes one :class:`ConfigError` line naming the key, the
bad value and what is allowed, and the CLI exits 2. The source of every
effective value is kept so ``laptop-agents config show`` can print it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from laptop_agents.domain.documents import MAX_BYTES, DocumentError, parse_document, type_name
from laptop_agents.domain.errors import UsageError
from laptop_agents.domain.models import DomainError
from laptop_agents.domain.symbols import normalize_symbol
from laptop_agents.domain.timeframes import parse_interval

PROFILE_DIR = Path(__file__).parent / "profiles"
PROFILES: tuple[str, ...] = ("paper", "live", "backtest")
ENV_PREFIX = "LA_"
SECRET_ENV_NAMES: tuple[str, ...] = ("BITUNIX_API_KEY", "BITUNIX_API_SECRET")


class ConfigError(UsageError):
    """A configuration problem; its message is the one line shown to the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SystemConfig(_Section):
    """Process-level behaviour: logs, guards, health endpoint."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_max_bytes: int = Field(10_000_000, ge=100_000, le=1_000_000_000)
    log_backups: int = Field(5, ge=1, le=100)
    stale_timeout_s: float = Field(60.0, gt=0, le=86_400)
    max_consecutive_md_errors: int = Field(3, ge=1, le=1000)
    # None = max(20, 2 x duration minutes), the seed's rule.
    max_errors_per_session: int | None = Field(None, ge=1, le=1_000_000)
    kill_check_interval_s: float = Field(1.0, gt=0, le=1.0)
    flatten_on_kill: bool = True
    heartbeat_interval_s: float = Field(5.0, gt=0, le=60)
    health_port: int | None = Field(None, ge=0, le=65535)
    dashboard: bool = False
    # None: 8765, or a free port when 8765 is taken (the URL is printed); 0: a free port.
    dashboard_port: int | None = Field(None, ge=0, le=65535)
    # Anything but the loopback needs LA_DASHBOARD_TOKEN (refused at start without it).
    dashboard_host: str = Field("127.0.0.1", min_length=1, max_length=255)
    # Alert destinations (apprise URLs); more from --notify and $LA_NOTIFY_URLS.
    # URLs carrying a token belong in the environment, not in a profile file.
    notify_urls: list[str] = Field(default_factory=list, max_length=20)
    daily_summary_hour_utc: int | None = Field(None, ge=0, le=23)
    # The live panel above the log lines on a terminal (plain status lines elsewhere).
    live_view: bool = True
    run_async: bool = True
    # Where report.html gets plotly.js: "shared" (once per workspace in assets/,
    # CDN fallback), "inline" (self-contained, +4.8 MB per report) or "cdn".
    report_plotly: Literal["shared", "inline", "cdn"] = "shared"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("dashboard_host")
    @classmethod
    def _host(cls, v: str) -> str:
        h = v.strip()
        if not h or any(c.isspace() or c in "/?#@" for c in h):
            raise ValueError("must be a host name or an IP address (127.0.0.1, ::1, 0.0.0.0...)")
        return h

    @field_validator("notify_urls", mode="before")
    @classmethod
    def _urls(cls, v: Any) -> Any:
        if isinstance(v, str):  # one string from the environment: space- or comma-separated
            return [u for u in v.replace(",", " ").split() if u]
        return v

    @field_validator("notify_urls")
    @classmethod
    def _url_shape(cls, v: list[str]) -> list[str]:
        for url in v:
            if "://" not in url:
                raise ValueError(f"{redact_url(url)} is not a notification URL (scheme://..., see apprise)")
        return v


class TradingConfig(_Section):
    """What to trade, from which source, in which execution mode."""

    symbol: str = "BTCUSDT"
    interval: str = "1m"
    source: Literal["mock", "bitunix", "replay"] = "mock"
    execution_mode: Literal["paper", "live"] = "paper"
    # The explicit live switch: live needs execution_mode=live, keys in the
    # environment AND this flag.
    live_enabled: bool = False
    duration_min: float = Field(60.0, gt=0, le=60 * 24 * 366)
    speed: float = Field(1.0, gt=0, le=1_000_000)  # mock source: simulated seconds per real second
    seed: int = Field(7, ge=0)
    replay_file: Path | None = None
    replay_realtime: bool = False
    record: bool = False
    bitunix_rest_url: str = "https://fapi.bitunix.com"
    bitunix_ws_url: str = "wss://fapi.bitunix.com/public/"
    bitunix_private_ws_url: str = "wss://fapi.bitunix.com/private/"  # live execution's order/position pushes
    # Live execution: exchange vs books every N minutes (and at start), and
    # whether an unexplained exchange position found at start is taken over.
    reconcile_minutes: float = Field(5.0, gt=0, le=1440)
    adopt: bool = False
    # Live: the exchange leverage for the symbol, set at start when it differs
    # (None: leave the account's setting as it is, checked against the limits).
    leverage: int | None = Field(None, ge=1, le=125)
    warmup_bars: int = Field(200, ge=0, le=5000)

    @field_validator("symbol", mode="before")
    @classmethod
    def _symbol(cls, v: Any) -> str:
        try:
            return normalize_symbol(str(v))
        except DomainError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> str:
        try:
            return parse_interval(str(v))
        except DomainError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("bitunix_rest_url", "bitunix_ws_url", "bitunix_private_ws_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must start with http(s):// or ws(s)://")
        return v.rstrip("/") if v.startswith("http") else v


class RiskConfig(_Section):
    """Sizing and hard limits. ``risk_pct`` is a percent: 1.0 means 1 %."""

    starting_equity: float | None = Field(None, gt=0, le=1e12)
    risk_pct: float | None = Field(None, gt=0, le=10)
    max_position_notional: float = Field(200_000.0, gt=0)
    max_leverage: float = Field(20.0, gt=0, le=125)
    max_orders_per_minute: int = Field(10, ge=1, le=10_000)
    max_daily_loss_pct: float = Field(5.0, gt=0, le=100)
    breaker_drawdown_pct: float = Field(5.0, gt=0, le=100)
    breaker_consecutive_losses: int = Field(5, ge=1, le=1000)


class BrokerConfig(_Section):
    """Paper broker fill model."""

    maker_fee_bps: float = Field(2.0, ge=-10, le=100)
    taker_fee_bps: float = Field(6.0, ge=0, le=100)
    slippage_bps: float = Field(1.0, ge=0, le=1000)
    partial_fill_volume_frac: float = Field(0.10, gt=0, le=1)
    order_expiry_hours: float = Field(24.0, gt=0, le=24 * 365)
    trailing_activation_r: float = Field(0.5, ge=0, le=100)
    trailing_distance_r: float = Field(1.5, gt=0, le=100)


class StrategyConfig(_Section):
    """Which strategy and which of its parameters the CLI overrides."""

    name: str = "default"
    file: Path | None = None
    stop_bps: float | None = Field(None, gt=0, le=5000)
    tp_r: float | None = Field(None, gt=0, le=50)


class AppConfig(_Section):
    system: SystemConfig = SystemConfig()
    trading: TradingConfig = TradingConfig()
    risk: RiskConfig = RiskConfig()
    broker: BrokerConfig = BrokerConfig()
    strategy: StrategyConfig = StrategyConfig()

    @model_validator(mode="after")
    def _live_gates(self) -> AppConfig:
        if self.trading.execution_mode == "paper" and self.trading.live_enabled:
            raise ValueError("trading.live_enabled=true needs trading.execution_mode=live")
        return self

    def error_budget(self) -> int:
        """The session's error budget: explicit, or max(20, 2 x duration minutes)."""
        if self.system.max_errors_per_session is not None:
            return self.system.max_errors_per_session
        return max(20, int(2 * self.trading.duration_min))


SECTIONS: dict[str, type[_Section]] = {
    "system": SystemConfig,
    "trading": TradingConfig,
    "risk": RiskConfig,
    "broker": BrokerConfig,
    "strategy": StrategyConfig,
}


class LoadedConfig(BaseModel):
    """The effective configuration and where each value came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: AppConfig
    sources: dict[str, str]
    profile: str


def _fmt_allowed(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        return "unknown key"
    if "expected" in ctx:
        return f"allowed: {ctx['expected']}"
    for bound, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx:
            return f"must be {word} {ctx[bound]}"
    return msg.removeprefix("Value error, ")


def _one_line(exc: ValidationError, sources: Mapping[str, str]) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err.get("loc", ()))
    where = sources.get(key)
    origin = f" (from {where})" if where else ""
    if err.get("type") == "extra_forbidden":
        section = key.split(".")[0]
        known = ", ".join(SECTIONS[section].model_fields) if section in SECTIONS and "." in key else ", ".join(SECTIONS)
        return f"unknown config key {key!r}{origin}; allowed keys here: {known}"
    value = err.get("input")
    return f"bad config value {key}={value!r}{origin}: {_fmt_allowed(err)}"


def _read_profile(profile: str) -> tuple[dict[str, Any], str]:
    path = Path(profile)
    if profile in PROFILES:
        path = PROFILE_DIR / f"{profile}.yaml"
    elif not path.is_file():
        raise ConfigError(
            f"unknown profile {profile!r}: use one of {', '.join(PROFILES)} or a path to a YAML file"
        )
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        data = parse_document(raw, yaml_syntax=path.suffix.lower() != ".json")
    except OSError as exc:
        raise ConfigError(f"cannot read profile {str(path)!r}: {exc.strerror or type(exc).__name__}") from None
    except DocumentError as exc:
        raise ConfigError(f"cannot read profile {str(path)!r}: {exc}") from None
    if data is None:
        data = {}  # an empty profile: no overrides
    if not isinstance(data, dict):
        raise ConfigError(f"profile {str(path)!r} must be a mapping of sections, got {type_name(data)}")
    return data, str(path)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown config section in environment variable {name}; allowed sections: {', '.join(SECTIONS)}"
            )
        if key not in SECTIONS[section].model_fields:
            raise ConfigError(
                f"unknown config key {section}.{key} in environment variable {name}; "
                f"allowed keys: {', '.join(SECTIONS[section].model_fields)}"
            )
        out.setdefault(section, {})[key] = value
    return out


def load_config(
    profile: str = "paper",
    cli_overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Build the effective configuration.

    ``cli_overrides`` maps dotted keys (``risk.risk_pct``) to values; ``None``
    values mean "flag not given" and are skipped.
    """
    env = os.environ if environ is None else environ
    merged: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    sources: dict[str, str] = {}

    data, where = _read_profile(profile)
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown config section {section!r} in profile {where}; allowed sections: {', '.join(SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section!r} in profile {where} must be a mapping")
        for key, value in values.items():
            merged[section][str(key)] = value
            sources[f"{section}.{key}"] = f"profile {profile}"

    for section, values in _env_overrides(env).items():
        for key, value in values.items():
            merged[section][key] = value
            sources[f"{section}.{key}"] = f"env {ENV_PREFIX}{section.upper()}__{key.upper()}"

    for dotted, value in (cli_overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        merged[section][key] = value
        sources[dotted] = "cli"

    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, sources)) from None
    full_sources = {
        f"{section}.{key}": sources.get(f"{section}.{key}", "default")
        for section, model in SECTIONS.items()
        for key in model.model_fields
    }
    return LoadedConfig(config=config, sources=full_sources, profile=profile)


def redact_url(url: str) -> str:
    """``scheme://host/…`` of a URL that may carry a token in its user or path."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?", host):
        host = "…"  # a token where the host would be (tgram://BOT_TOKEN/CHAT)
    return f"{scheme}://{host}{'/…' if '/' in rest.strip('/') or '?' in rest else ''}"


def secret_present(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a secret is set in the environment (secrets never live in files)."""
    env = os.environ if environ is None else environ
    return bool(env.get(name))


def effective_rows(loaded: LoadedConfig, environ: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(key, value, source) rows for ``config show``; secrets are masked."""
    rows: list[tuple[str, str, str]] = []
    dumped = loaded.config.model_dump(mode="json")
    for section, values in dumped.items():
        for key, value in values.items():
            if key == "notify_urls":  # tokens live in these URLs: show where they go, not the token
                value = [redact_url(str(u)) for u in value]
            rows.append((f"{section}.{key}", "null" if value is None else str(value), loaded.sources[f"{section}.{key}"]))
    env = os.environ if environ is None else environ
    for name in SECRET_ENV_NAMES:
        rows.append((f"env.{name}", "***set***" if env.get(name) else "(not set)", "env"))
    return rows
