"""Signature checks of the fake exchange, as strict as the real one is thought to be.

REST: ``api-key``/``nonce``/``timestamp``/``sign`` headers; the signature is
recomputed from the *raw* body bytes as received (never a re-serialisation:
the official Python demo signs a body with spaces and the server accepts
it) and the decoded query parameters. A missing key gets 10003; an unknown
key, a stale timestamp (outside ``recv_window_ms`` of the wall clock), a
bad signature or a nonce already used within the window get the codes kept
in :mod:`protocol_private` (10007 for all: L). The nonce is remembered only
once the signature checked out, so a forged request cannot burn a nonce.

The timestamp is compared with the *wall* clock, not the fake's simulated
market clock: the client signs with its own wall clock, as it would against
Bitunix.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.signing import sign_rest, sign_ws_login
from laptop_agents.testing.fake_exchange.trading import FakeAccount
from laptop_agents.wallclock import now_ms


@dataclass(frozen=True, slots=True)
class AuthResult:
    account: FakeAccount | None
    code: int = 0
    msg: str = ""
    reason: str = ""



class AuthChecker:
    def __init__(
        self,
        accounts: tuple[FakeAccount, ...],
        recv_window_ms: int = pp.RECV_WINDOW_MS,
        *,
        wall_ms: Callable[[], int] = now_ms,
        max_nonces: int = 200_000,
    ) -> None:
        self._by_key = {a.api_key: a for a in accounts}
        self.recv_window_ms = recv_window_ms
        self._wall = wall_ms
        self._max_nonces = max_nonces
        self._nonces: OrderedDict[tuple[str, str], int] = OrderedDict()  # (key, nonce) -> expiry ms
        self.rejected: dict[str, int] = {}

    def _refuse(self, code: int, msg: str, reason: str) -> AuthResult:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        return AuthResult(None, code, msg, reason)

    def _forget_expired(self, now: int) -> None:
        while self._nonces:
            key, expiry = next(iter(self._nonces.items()))
            if expiry > now and len(self._nonces) <= self._max_nonces:
                break
            self._nonces.popitem(last=False)

    def _common(self, api_key: str | None, timestamp: Any, nonce: str | None, *, ms: bool
                ) -> tuple[FakeAccount | None, AuthResult | None, int]:
        if not api_key:
            return None, self._refuse(pp.CODE_API_KEY_EMPTY, "api-key can't be empty", "missing_key"), 0
        account = self._by_key.get(api_key)
        if account is None:
            return None, self._refuse(pp.CODE_UNKNOWN_API_KEY, "Sign signature error", "unknown_key"), 0
        if nonce is None or timestamp is None or timestamp == "":
            return None, self._refuse(pp.CODE_SIGNATURE, "Sign signature error", "missing_header"), 0
        try:
            ts = int(timestamp)
        except (TypeError, ValueError):
            return None, self._refuse(pp.CODE_SIGNATURE, "Sign signature error", "bad_timestamp"), 0
        # REST: ms. Websocket login: seconds or ms (the demos disagree), told apart by size.
        seconds = not ms and ts < 100_000_000_000
        ts_ms = ts * 1000 if seconds else ts
        now = self._wall()
        if abs(now - ts_ms) > self.recv_window_ms + (1000 if seconds else 0):
            return None, self._refuse(pp.CODE_STALE_TIMESTAMP, "Sign signature error: timestamp expired",
                                      "stale_timestamp"), 0
        return account, None, now

    def _use_nonce(self, account: FakeAccount, nonce: str, now: int) -> AuthResult | None:
        self._forget_expired(now)
        key = (account.api_key, nonce)
        if key in self._nonces:
            return self._refuse(pp.CODE_NONCE_REUSED, "Sign signature error: nonce already used", "nonce_reused")
        self._nonces[key] = now + 2 * self.recv_window_ms
        return None

    def check_rest(self, headers: Mapping[str, str], params: Mapping[str, str], body: str) -> AuthResult:
        nonce = headers.get("nonce")
        account, refused, now = self._common(headers.get("api-key"), headers.get("timestamp"), nonce, ms=True)
        if refused is not None:
            return refused
        assert account is not None and nonce is not None
        expected = sign_rest(account.api_key, account.secret_key, nonce, int(headers["timestamp"]), params, body)
        if not hmac.compare_digest(expected, headers.get("sign") or ""):
            return self._refuse(pp.CODE_SIGNATURE, "Sign signature error", "bad_signature")
        refused = self._use_nonce(account, nonce, now)
        return refused or AuthResult(account)

    def check_ws_login(self, args: Any) -> AuthResult:
        arg = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else None
        if arg is None:
            return self._refuse(pp.CODE_PARAMETER, "Parameter error: login args", "bad_login")
        nonce = arg.get("nonce")
        nonce = str(nonce) if nonce is not None else None
        timestamp = arg.get("timestamp")
        if isinstance(timestamp, bool):
            timestamp = None
        account, refused, now = self._common(arg.get("apiKey"), timestamp, nonce, ms=False)
        if refused is not None:
            return refused
        assert account is not None and nonce is not None
        expected = sign_ws_login(account.api_key, account.secret_key, nonce, int(str(timestamp)))
        if not hmac.compare_digest(expected, str(arg.get("sign") or "")):
            return self._refuse(pp.CODE_SIGNATURE, "Sign signature error", "bad_signature")
        refused = self._use_nonce(account, nonce, now)
        return refused or AuthResult(account)
