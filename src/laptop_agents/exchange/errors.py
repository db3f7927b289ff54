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
"""

from __future__ import annotations

from laptop_agents.exchange import protocol


class ExchangeError(Exception):
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


def error_for_code(code: int, msg: str, *, http_status: int | None = None, where: str = "") -> ExchangeError:
    """The typed error of a non-zero envelope ``code``."""
    prefix = f"{where}: " if where else ""
    text = f"{prefix}bitunix code {code}: {msg or 'no message'}"
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
