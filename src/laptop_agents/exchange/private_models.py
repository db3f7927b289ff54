"""Typed records of the private API: what we send (:class:`OrderRequest`) and
what comes back (orders, positions, balance...), tolerant of every documented
difference between the docs and the wire.

Tolerated (see :mod:`protocol_private`): numbers as strings or JSON numbers,
empty strings for absent values, ``data`` as an object or a one-item list,
millisecond times as ints, digit strings or ISO-8601 strings, enums in any
case (``Buy``, ``Limit``), statuses with a trailing underscore (``NEW_``),
position side ``BUY``/``SELL`` for ``LONG``/``SHORT``, stop types ``Mark``/
``Last``, a market order's price ``"market"``, and the websocket's field
names (``dealAmount``, ``averagePrice``, ``reductionOnly``, ``orderStatus``,
``type``, ``positionType``, ``coin``).

A record that cannot be understood raises :class:`MalformedReplyError` (REST)
or :class:`BadFrameError` (websocket), never a pydantic error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from laptop_agents.domain.models import OrderType, Side
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.errors import MalformedReplyError

# -- wire value coercion -------------------------------------------------------------
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?")


def _to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        if value.strip().lower() == pp.MARKET_PRICE_TEXT:
            return None
        if len(value) > 64 or not _NUMBER.fullmatch(value):
            raise ValueError(f"expected a numeric string, got {value[:40]!r}")
        out = float(value)
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(out):
        raise ValueError("expected a finite number")
    return out


def _req_float(value: Any) -> float:
    out = _to_float(value)
    if out is None:
        raise ValueError("a number is required")
    return out


def _zero_float(value: Any) -> float:
    out = _to_float(value)
    return 0.0 if out is None else out


def iso_to_ms(text: str) -> int:
    """``2025-04-26T17:06:13.155255000Z`` -> UTC ms (any number of fraction digits)."""
    m = _ISO.fullmatch(text.strip())
    if not m:
        raise ValueError(f"expected an ISO-8601 time, got {text[:40]!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    ms = int(dt.timestamp()) * 1000 + int((frac or "0")[:3].ljust(3, "0"))
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        ms -= sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
    return ms


def _to_ms(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and len(text) <= 16:
            return int(text)
        return iso_to_ms(text)
    raise ValueError(f"expected a time, got {type(value).__name__}")


def _enum_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a name, got {value!r}")
    return value.strip().upper().rstrip("_")


def _opt_enum_text(value: Any) -> str | None:
    return None if value is None or value == "" else _enum_text(value)


def _stop_type(value: Any) -> str | None:
    text = _opt_enum_text(value)
    return None if text is None else pp.STOP_TYPE_ALIASES.get(text, text)


def _position_side(value: Any) -> str:
    text = _enum_text(value)
    return pp.POSITION_SIDE_ALIASES.get(text, text)


def _id_text(value: Any) -> str:
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError("an id is required")
    if isinstance(value, int | str):
        return str(value)
    raise ValueError(f"expected an id, got {type(value).__name__}")


def _opt_id(value: Any) -> str | None:
    return None if value is None or value == "" else _id_text(value)


def _bool(value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected a boolean, got {value!r}")


def _opt_int(value: Any) -> int | None:
    out = _to_float(value)
    if out is None:
        return None
    if not out.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(out)


WireFloat = Annotated[float | None, BeforeValidator(_to_float)]
ReqFloat = Annotated[float, BeforeValidator(_req_float)]
ZeroFloat = Annotated[float, BeforeValidator(_zero_float)]
WireMs = Annotated[int | None, BeforeValidator(_to_ms)]
WireBool = Annotated[bool, BeforeValidator(_bool)]
WireInt = Annotated[int | None, BeforeValidator(_opt_int)]
EnumText = Annotated[str, BeforeValidator(_enum_text)]
OptEnumText = Annotated[str | None, BeforeValidator(_opt_enum_text)]
StopType = Annotated[str | None, BeforeValidator(_stop_type)]
WireSide = Annotated[Side, BeforeValidator(_enum_text)]
WireOrderType = Annotated[OrderType, BeforeValidator(_enum_text)]
IdText = Annotated[str, BeforeValidator(_id_text)]
OptId = Annotated[str | None, BeforeValidator(_opt_id)]


def wire_number(value: float) -> str:
    """A float as the plain decimal text the API expects: no exponent, no trailing zeros."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _alias(*names: str) -> Any:
    return Field(validation_alias=AliasChoices(*names))


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# -- replies -----------------------------------------------------------------------------
class OrderAck(_Wire):
    """place_order reply: the order was *accepted* (it may still be rejected later)."""

    order_id: IdText = _alias("orderId", "id")
    client_id: OptId = Field(default=None, validation_alias=AliasChoices("clientId"))


class Order(_Wire):
    """One order as REST (pending/history/detail) or the ``order`` push reports it."""

    order_id: IdText = _alias("orderId", "id")
    client_id: OptId = Field(default=None, validation_alias=AliasChoices("clientId"))
    symbol: str
    side: WireSide
    order_type: WireOrderType = _alias("orderType", "type")
    qty: ReqFloat
    filled_qty: ZeroFloat = Field(default=0.0, validation_alias=AliasChoices("tradeQty", "dealAmount"))
    price: WireFloat = None
    avg_price: WireFloat = Field(default=None, validation_alias=AliasChoices("avgPrice", "averagePrice"))
    effect: str | None = None
    reduce_only: WireBool = Field(default=False, validation_alias=AliasChoices("reduceOnly", "reductionOnly"))
    status: EnumText = _alias("status", "orderStatus")
    fee: ZeroFloat = 0.0
    realized_pnl: ZeroFloat = Field(default=0.0, validation_alias=AliasChoices("realizedPNL"))
    leverage: WireInt = None
    margin_mode: OptEnumText = Field(default=None, validation_alias=AliasChoices("marginMode", "positionType"))
    position_mode: OptEnumText = Field(default=None, validation_alias=AliasChoices("positionMode"))
    tp_price: WireFloat = Field(default=None, validation_alias=AliasChoices("tpPrice"))
    tp_stop_type: StopType = Field(default=None, validation_alias=AliasChoices("tpStopType"))
    tp_order_type: OptEnumText = Field(default=None, validation_alias=AliasChoices("tpOrderType"))
    tp_order_price: WireFloat = Field(default=None, validation_alias=AliasChoices("tpOrderPrice"))
    sl_price: WireFloat = Field(default=None, validation_alias=AliasChoices("slPrice"))
    sl_stop_type: StopType = Field(default=None, validation_alias=AliasChoices("slStopType"))
    sl_order_type: OptEnumText = Field(default=None, validation_alias=AliasChoices("slOrderType"))
    sl_order_price: WireFloat = Field(default=None, validation_alias=AliasChoices("slOrderPrice"))
    ctime: WireMs = None
    mtime: WireMs = None

    @property
    def is_open(self) -> bool:
        return self.status in pp.OPEN_STATUSES

    @property
    def remaining_qty(self) -> float:
        return max(0.0, round(self.qty - self.filled_qty, 12))


class Trade(_Wire):
    """One fill from ``get_history_trades``."""

    trade_id: IdText = _alias("tradeId", "id")
    order_id: IdText = _alias("orderId")
    client_id: OptId = Field(default=None, validation_alias=AliasChoices("clientId"))
    symbol: str
    side: WireSide
    qty: ReqFloat
    price: ReqFloat
    fee: ZeroFloat = 0.0
    realized_pnl: ZeroFloat = Field(default=0.0, validation_alias=AliasChoices("realizedPNL"))
    role: OptEnumText = Field(default=None, validation_alias=AliasChoices("roleType"))
    ctime: WireMs = None


class CancelItem(_Wire):
    order_id: OptId = Field(default=None, validation_alias=AliasChoices("orderId", "id"))
    client_id: OptId = Field(default=None, validation_alias=AliasChoices("clientId"))


class CancelFailure(CancelItem):
    code: WireInt = Field(default=None, validation_alias=AliasChoices("errorCode", "code"))
    message: str = Field(default="", validation_alias=AliasChoices("errorMsg", "msg"))


class CancelResult(_Wire):
    """A cancel *request* result: success does not prove the cancel happened
    (H: trust the order push or a query)."""

    succeeded: list[CancelItem] = Field(default_factory=list, validation_alias=AliasChoices("successList"))
    failed: list[CancelFailure] = Field(default_factory=list, validation_alias=AliasChoices("failureList"))

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ([] if v is None else v) for k, v in data.items()}
        return data


class Position(_Wire):
    """An open position (one-way mode: at most one per symbol)."""

    position_id: IdText = _alias("positionId", "id")
    symbol: str
    side: Annotated[Literal["LONG", "SHORT"], BeforeValidator(_position_side)]
    qty: ReqFloat
    entry_value: WireFloat = Field(default=None, validation_alias=AliasChoices("entryValue"))
    avg_open_price: WireFloat = Field(default=None, validation_alias=AliasChoices("avgOpenPrice"))
    leverage: WireInt = None
    margin_mode: OptEnumText = Field(default=None, validation_alias=AliasChoices("marginMode"))
    position_mode: OptEnumText = Field(default=None, validation_alias=AliasChoices("positionMode"))
    margin: WireFloat = None
    unrealized_pnl: ZeroFloat = Field(default=0.0, validation_alias=AliasChoices("unrealizedPNL"))
    realized_pnl: ZeroFloat = Field(default=0.0, validation_alias=AliasChoices("realizedPNL"))
    fee: ZeroFloat = 0.0
    funding: ZeroFloat = 0.0
    liq_price: WireFloat = Field(default=None, validation_alias=AliasChoices("liqPrice"))
    ctime: WireMs = None
    mtime: WireMs = None

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side == "LONG" else -self.qty

    @property
    def entry_price(self) -> float | None:
        """``avgOpenPrice`` when sent, else entry value / qty (the push has no avg price)."""
        if self.avg_open_price is not None:
            return self.avg_open_price
        if self.entry_value is not None and self.qty:
            return self.entry_value / self.qty
        return None


class Balance(_Wire):
    """The futures account in one margin coin (REST ``account`` or the ``balance`` push)."""

    margin_coin: str = Field(default=pp.MARGIN_COIN, validation_alias=AliasChoices("marginCoin", "coin"))
    available: ReqFloat
    frozen: ZeroFloat = 0.0
    margin: ZeroFloat = 0.0
    transfer: WireFloat = None
    position_mode: OptEnumText = Field(default=None, validation_alias=AliasChoices("positionMode"))
    cross_unrealized_pnl: ZeroFloat = Field(default=0.0, validation_alias=AliasChoices("crossUnrealizedPNL"))
    isolation_unrealized_pnl: ZeroFloat = Field(default=0.0, validation_alias=AliasChoices("isolationUnrealizedPNL"))
    bonus: ZeroFloat = 0.0

    @property
    def equity_estimate(self) -> float:
        """available + frozen + margin + unrealized PnL: what the account is worth now."""
        return self.available + self.frozen + self.margin + self.cross_unrealized_pnl + self.isolation_unrealized_pnl


class LeverageMarginMode(_Wire):
    symbol: str
    margin_coin: str = Field(default=pp.MARGIN_COIN, validation_alias=AliasChoices("marginCoin"))
    leverage: Annotated[int, BeforeValidator(_opt_int)]
    margin_mode: EnumText = _alias("marginMode")


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, what: str, err: type[MalformedReplyError] = MalformedReplyError) -> M:
    """``model`` from one wire object, every failure as ``err`` naming the first bad field."""
    if not isinstance(data, Mapping):
        raise err(f"{what}: expected an object, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "?"
        raise err(f"{what}: bad field {loc}: {first.get('msg', 'invalid')}") from None


def one_object(data: Any, what: str, err: type[MalformedReplyError] = MalformedReplyError) -> Any:
    """An object where the docs say list and the wire says object (or the reverse)."""
    if isinstance(data, list):
        if len(data) != 1:
            raise err(f"{what}: expected one item, got {len(data)}")
        return data[0]
    return data


def object_list(data: Any, what: str, err: type[MalformedReplyError] = MalformedReplyError) -> list[Any]:
    """A list where the wire may send one object (or null for none)."""
    if data is None:
        return []
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        return [data]
    raise err(f"{what}: expected a list, got {type(data).__name__}")


# -- requests -------------------------------------------------------------------------------
Effect = Literal["GTC", "IOC", "FOK", "POST_ONLY"]
StopKind = Literal["MARK_PRICE", "LAST_PRICE"]


class OrderRequest(BaseModel):
    """An order to place. Validated here so a bad order never reaches the wire.

    One-way mode only: a close is the opposite side with ``reduce_only``
    (see :func:`protocol_private.close_side`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1)
    side: Side
    qty: float = Field(gt=0, allow_inf_nan=False)
    order_type: OrderType = OrderType.LIMIT
    price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    effect: Effect | None = None
    reduce_only: bool = False
    client_id: str | None = None
    tp_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tp_stop_type: StopKind | None = None
    tp_order_type: OrderType | None = None
    tp_order_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    sl_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    sl_stop_type: StopKind | None = None
    sl_order_type: OrderType | None = None
    sl_order_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> OrderRequest:
        if self.order_type is OrderType.LIMIT and self.price is None:
            raise ValueError("a LIMIT order needs a price")
        if self.order_type is OrderType.MARKET and self.price is not None:
            raise ValueError("a MARKET order takes no price")
        if self.effect == "POST_ONLY" and self.order_type is not OrderType.LIMIT:
            raise ValueError("POST_ONLY needs a LIMIT order")
        if self.client_id is not None and not pp.CLIENT_ID_PATTERN.fullmatch(self.client_id):
            raise ValueError(f"client id must be 1-{pp.CLIENT_ID_MAX_LEN} characters of [A-Za-z0-9]")
        for leg in ("tp", "sl"):
            if getattr(self, f"{leg}_order_type") is OrderType.LIMIT and getattr(self, f"{leg}_order_price") is None:
                raise ValueError(f"{leg}_order_type LIMIT needs {leg}_order_price")
            if getattr(self, f"{leg}_price") is None and any(
                getattr(self, f"{leg}_{k}") is not None for k in ("stop_type", "order_type", "order_price")
            ):
                raise ValueError(f"{leg} settings given without {leg}_price")
        return self

    @classmethod
    def limit(cls, symbol: str, side: Side | str, qty: float, price: float, **kw: Any) -> OrderRequest:
        return cls(symbol=symbol, side=Side(side), qty=qty, price=price, order_type=OrderType.LIMIT, **kw)

    @classmethod
    def market(cls, symbol: str, side: Side | str, qty: float, **kw: Any) -> OrderRequest:
        return cls(symbol=symbol, side=Side(side), qty=qty, order_type=OrderType.MARKET, **kw)

    def to_wire(self) -> dict[str, Any]:
        """The place_order body: numbers as strings (H), no empty values, and
        in one-way mode no ``tradeSide``/``positionId`` (L)."""
        body: dict[str, Any] = {
            "symbol": self.symbol,
            "side": self.side.value,
            "orderType": self.order_type.value,
            "qty": wire_number(self.qty),
        }
        if self.price is not None:
            body["price"] = wire_number(self.price)
        if self.effect is not None:
            body["effect"] = self.effect
        elif self.order_type is OrderType.LIMIT:
            body["effect"] = "GTC"  # docs: "required if LIMIT" (H)
        if self.client_id is not None:
            body["clientId"] = self.client_id
        if self.reduce_only:
            body["reduceOnly"] = True
        for leg in ("tp", "sl"):
            price = getattr(self, f"{leg}_price")
            if price is None:
                continue
            body[f"{leg}Price"] = wire_number(price)
            body[f"{leg}StopType"] = getattr(self, f"{leg}_stop_type") or "LAST_PRICE"
            order_type = getattr(self, f"{leg}_order_type") or OrderType.MARKET
            body[f"{leg}OrderType"] = order_type.value
            order_price = getattr(self, f"{leg}_order_price")
            if order_price is not None:
                body[f"{leg}OrderPrice"] = wire_number(order_price)
        return body
