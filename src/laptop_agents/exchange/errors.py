"""Typed exchange errors, one class per family the caller reacts to differently.

Bitunix reports most errors with HTTP 200 and a non-zero ``code`` in the
envelope, so the family is decided from the code first and the HTTP status
second. What a caller does per family:

- :class:`RateLimitedError` -- back off (shared budget) and retry reads;
- :class:`TransientError` -- 5xx, timeouts, connection failures: retry reads;
- :class:`MalformedReplyError` -- the reply cannot be understood: retry reads
  (a proxy glitch is possible) but report it;
- :class:`AuthError`, :class:`ParameterError`, :class:`MarketError`,
  :class:`TradingError` -- retrying cannot help: fail with the message.
  Trading refusals have a class per family of Bitunix codes (insufficient
  balance, quantity, price limit, reduce-only, duplicate client id...).

Writes (order placement, cancel) are never retried blindly: when the request
may have reached the exchange but no answer came back the private client
raises :class:`UnknownOutcome`, resolved only by querying the order by its
client id. :class:`NotSentError` marks a request that certainly never left.

No error text ever carries an API key, secret or signature: messages are
built from the path, the code and the exchange's ``msg`` only.

The tree (under :class:`laptop_agents.domain.errors.LaptopAgentsError`)::

    ExchangeError
    ├── RateLimitedError
    ├── TransientError
    │   └── NotSentError
    ├── MalformedReplyError
    │   └── BadFrameError
    ├── AuthError
    ├── ParameterError
    ├── MarketError
    ├── TradingError
    │   ├── InsufficientBalanceError, QuantityError, PriceLimitError,
    │   ├── ReduceOnlyError, TpSlError, LeverageError, DuplicateClientIdError,
    │   └── OrderNotFoundError, OrderStatusError, PositionNotFoundError, AccountBlockedError
    ├── UnknownOutcome
    └── UnresolvedOrderError
"""

from __future__ import annotations

from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.exchange import protocol, protocol_private


class ExchangeError(LaptopAgentsError):
    """Base of every Bitunix client error. ``kind`` is a short stable name
    (used as the ``SourceError.kind`` when a market source survives it)."""

    kind = "exchange_error"
    retryable = False

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class RateLimitedError(ExchangeError):
    kind = "rate_limited"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after_s = retry_after_s


class TransientError(ExchangeError):
    kind = "transient"
    retryable = True


class MalformedReplyError(ExchangeError):
    kind = "malformed_reply"
    retryable = True


class BadFrameError(MalformedReplyError):
    """A websocket push that fails validation; the push parser raises only this."""

    kind = "bad_frame"
    retryable = False


class AuthError(ExchangeError):
    kind = "auth"


class ParameterError(ExchangeError):
    kind = "parameter"


class MarketError(ExchangeError):
    kind = "market"


class TradingError(ExchangeError):
    """An order or position request the exchange refused (balance, limits...)."""

    kind = "trading"


class NotSentError(TransientError):
    """The request never left this machine (connection refused, connect
    timeout): a write certainly did nothing and may be sent again."""

    kind = "not_sent"


class OrderNotFoundError(TradingError):
    """20007: no order with that id -- an answer for lookups ("not there, or
    not yet": the record can lag right after placement), not a rejection."""

    kind = "order_not_found"


class DuplicateClientIdError(TradingError):
    """30042: an order with this client id already exists (proof the id reached the exchange)."""

    kind = "duplicate_client_id"

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None,
                 client_id: str | None = None) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.client_id = client_id


class InsufficientBalanceError(TradingError):
    kind = "insufficient_balance"


class QuantityError(TradingError):
    kind = "quantity"


class PriceLimitError(TradingError):
    """The order price is outside what the exchange accepts now (price band, liquidation)."""

    kind = "price_limit"


class ReduceOnlyError(TradingError):
    """30018/30019: a reduce-only order with no position, or in the position's direction."""

    kind = "reduce_only"


class TpSlError(TradingError):
    kind = "tpsl"


class LeverageError(TradingError):
    kind = "leverage"


class AccountBlockedError(TradingError):
    kind = "account_blocked"


class PositionNotFoundError(TradingError):
    """30004: the position does not exist (for a close: it is already closed)."""

    kind = "position_not_found"


class OrderStatusError(TradingError):
    """10013: the order is in a state that does not allow this (e.g. cancelling a filled order)."""

    kind = "order_status"


class UnknownOutcome(ExchangeError):
    """A write (``action``: place, cancel, cancel_all) may or may not have been
    executed: timeout, 5xx, dropped connection, unreadable or unknown reply.
    Never resend it; resolve by querying ``client_id`` (placements) or the
    orders (cancels)."""

    kind = "unknown_outcome"

    def __init__(self, message: str, *, action: str, client_id: str | None = None,
                 order_id: str | None = None, code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.action = action
        self.client_id = client_id
        self.order_id = order_id


class UnresolvedOrderError(ExchangeError):
    """An unknown outcome that bounded lookups could not resolve: the caller must
    stop and say which order is unresolved (never send it again)."""

    kind = "unresolved_order"

    def __init__(self, message: str, *, client_id: str, attempts: int) -> None:
        super().__init__(message)
        self.client_id = client_id
        self.attempts = attempts


def _code_class(code: int) -> type[ExchangeError] | None:
    p = protocol_private
    if code in p.CODES_SYSTEM_ERROR:
        return TransientError
    if code == p.CODE_ORDER_NOT_FOUND:
        return OrderNotFoundError
    if code == p.CODE_DUPLICATE_CLIENT_ID:
        return DuplicateClientIdError
    if code == p.CODE_POSITION_NOT_EXIST:
        return PositionNotFoundError
    if code == p.CODE_ORDER_STATUS:
        return OrderStatusError
    for codes, cls in (
        (p.CODES_BALANCE, InsufficientBalanceError),
        (p.CODES_QUANTITY, QuantityError),
        (p.CODES_PRICE_LIMIT, PriceLimitError),
        (p.CODES_REDUCE_ONLY, ReduceOnlyError),
        (p.CODES_TPSL, TpSlError),
        (p.CODES_LEVERAGE, LeverageError),
        (p.CODES_ACCOUNT_BLOCKED, AccountBlockedError),
    ):
        if code in codes:
            return cls
    if code in p.CODES_TRADING_REFUSED:
        return TradingError
    return None


def error_for_code(code: int, msg: str, *, http_status: int | None = None, where: str = "") -> ExchangeError:
    """The typed error of a non-zero envelope ``code``."""
    prefix = f"{where}: " if where else ""
    text = f"{prefix}bitunix code {code}: {msg or 'no message'}"
    specific = _code_class(code)
    if specific is not None:
        return specific(text, code=code, http_status=http_status)
    if code in protocol.CODES_RATE_LIMIT:
        return RateLimitedError(text, code=code, http_status=http_status)
    if code in protocol.CODES_AUTH:
        return AuthError(text, code=code, http_status=http_status)
    if code in protocol.CODES_PARAMETER:
        return ParameterError(text, code=code, http_status=http_status)
    if code in protocol.CODES_MARKET:
        return MarketError(text, code=code, http_status=http_status)
    if code in protocol.CODES_TRADING:
        return TradingError(text, code=code, http_status=http_status)
    if http_status is not None and http_status >= 500:
        return TransientError(text, code=code, http_status=http_status)
    return ExchangeError(text, code=code, http_status=http_status)


def error_for_status(status: int, body_hint: str, *, where: str = "", retry_after_s: float | None = None) -> ExchangeError:
    """The typed error of an HTTP status when the body carries no envelope code."""
    prefix = f"{where}: " if where else ""
    text = f"{prefix}HTTP {status}" + (f": {body_hint}" if body_hint else "")
    if status == 429:
        return RateLimitedError(text, http_status=status, retry_after_s=retry_after_s)
    if status >= 500 or status == 408:
        return TransientError(text, http_status=status)
    if status in (401, 403):
        return AuthError(text, http_status=status)
    if status in (400, 404, 405, 422):
        return ParameterError(text, http_status=status)
    return ExchangeError(text, http_status=status)
