"""API credentials for the private Bitunix API, handled so they cannot leak.

The key and secret come from the environment only (``BITUNIX_API_KEY``,
``BITUNIX_API_SECRET``). An :class:`ApiCredentials` never shows them: its
``repr``/``str`` are masked, it refuses to be pickled, and creating one
registers both values with the log scrubber so that even an accident (a
value echoed by a server into an error message) is masked in every log line.
Signatures are computed here and handed straight to the transport; nothing
keeps or logs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NoReturn

from laptop_agents.domain.errors import UsageError
from laptop_agents.exchange import signing
from laptop_agents.logs import SCRUBBER

ENV_API_KEY = "BITUNIX_API_KEY"
ENV_API_SECRET = "BITUNIX_API_SECRET"


class CredentialsError(UsageError):
    """Keys missing or unusable; the message names the variable, never its value."""


class ApiCredentials:
    """An API key and secret. Use :meth:`rest_headers` / :meth:`ws_login`."""

    __slots__ = ("_key", "_secret")

    def __init__(self, api_key: str, secret_key: str) -> None:
        for name, value in (("api key", api_key), ("api secret", secret_key)):
            if not isinstance(value, str) or not value.strip():
                raise CredentialsError(f"the {name} is empty")
            if value != value.strip() or any(ch.isspace() for ch in value):
                raise CredentialsError(f"the {name} contains whitespace (a copy-paste slip?)")
        self._key = api_key
        self._secret = secret_key
        SCRUBBER.register(api_key, secret_key)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        key_var: str = ENV_API_KEY,
        secret_var: str = ENV_API_SECRET,
    ) -> ApiCredentials:
        env = os.environ if environ is None else environ
        missing = [name for name in (key_var, secret_var) if not env.get(name, "").strip()]
        if missing:
            raise CredentialsError(f"live trading needs {' and '.join(missing)} set in the environment")
        return cls(env[key_var], env[secret_var])

    @property
    def api_key(self) -> str:
        return self._key

    def rest_headers(
        self, timestamp_ms: int, params: Mapping[str, Any] | None = None, body: str = "", nonce: str | None = None
    ) -> dict[str, str]:
        """Auth headers of one REST request (fresh nonce unless given)."""
        return signing.rest_headers(self._key, self._secret, timestamp_ms=timestamp_ms, params=params,
                                    body=body, nonce=nonce)

    def ws_login(self, timestamp: int, nonce: str | None = None) -> dict[str, Any]:
        """The private websocket login message."""
        return signing.ws_login_message(self._key, self._secret, timestamp, nonce)

    def __repr__(self) -> str:
        return "ApiCredentials(api_key=***, secret=***)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("ApiCredentials cannot be pickled (it would write the secret somewhere)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiCredentials) and (self._key, self._secret) == (other._key, other._secret)

    def __hash__(self) -> int:
        return hash(signing.sha256_hex(self._key))
