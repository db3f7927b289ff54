"""Bitunix request signing (H), for the live-execution work that builds on this.

REST: ``digest = sha256_hex(nonce + timestamp + apiKey + queryParams + body)``,
``sign = sha256_hex(digest + secretKey)`` -- two plain SHA-256, no HMAC,
lowercase hex. ``queryParams`` is the parameters sorted by key and joined as
key+value with no separators; ``body`` the exact compact JSON text sent. So
the body is serialised once (:func:`compact_json`), signed, and those very
bytes are sent.

Keys come from the environment only; nothing here logs or stores them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from collections.abc import Mapping
from typing import Any

_NONCE_ALPHABET = string.ascii_letters + string.digits


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_nonce(length: int = 32) -> str:
    """32 random alphanumeric characters, as the API expects."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def query_string_for_sign(params: Mapping[str, Any] | None) -> str:
    """``{"uid": 200, "id": 1}`` -> ``"id1uid200"`` (ASCII key order, no separators)."""
    if not params:
        return ""
    return "".join(f"{key}{_value_text(params[key])}" for key in sorted(params))


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compact_json(body: Any) -> str:
    """The one serialisation of a request body: signed and sent as is."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def sign_rest(
    api_key: str,
    secret_key: str,
    nonce: str,
    timestamp_ms: int,
    params: Mapping[str, Any] | None = None,
    body: str = "",
) -> str:
    digest = sha256_hex(f"{nonce}{timestamp_ms}{api_key}{query_string_for_sign(params)}{body}")
    return sha256_hex(digest + secret_key)


def rest_headers(
    api_key: str,
    secret_key: str,
    *,
    timestamp_ms: int,
    params: Mapping[str, Any] | None = None,
    body: str = "",
    nonce: str | None = None,
) -> dict[str, str]:
    """The authentication headers of one private REST request."""
    nonce = nonce or make_nonce()
    return {
        "api-key": api_key,
        "nonce": nonce,
        "timestamp": str(timestamp_ms),
        "sign": sign_rest(api_key, secret_key, nonce, timestamp_ms, params, body),
        "Content-Type": "application/json",
    }


def sign_ws_login(api_key: str, secret_key: str, nonce: str, timestamp: int) -> str:
    """Private websocket login: ``sha256(sha256(nonce + timestamp + apiKey) + secretKey)``.

    The docs say seconds; one official demo sends ms -- the caller chooses."""
    return sha256_hex(sha256_hex(f"{nonce}{timestamp}{api_key}") + secret_key)


def ws_login_message(api_key: str, secret_key: str, timestamp: int, nonce: str | None = None) -> dict[str, Any]:
    nonce = nonce or make_nonce()
    return {
        "op": "login",
        "args": [{
            "apiKey": api_key,
            "timestamp": timestamp,
            "nonce": nonce,
            "sign": sign_ws_login(api_key, secret_key, nonce, timestamp),
        }],
    }
