"""Every wire fact of the Bitunix *private* API (orders, positions, account,
private websocket) in one place, each with its confidence tag.

Source: ``../shared/docs/bitunix-private-api.md`` (section numbers in
brackets). **H** = official docs or official demo code, **M** = third-party
clients or their notes on live behaviour, **L** = our inference, kept here so
that one edit corrects the client and the fake exchange together (the fake
imports these very constants). Nothing here was verified against the live
exchange: verify the L facts with the minimum size before trusting them.
"""

from __future__ import annotations

import re

# -- REST paths (H) [2] --------------------------------------------------------------
PATH_PLACE_ORDER = "/api/v1/futures/trade/place_order"
PATH_CANCEL_ORDERS = "/api/v1/futures/trade/cancel_orders"
PATH_CANCEL_ALL_ORDERS = "/api/v1/futures/trade/cancel_all_orders"  # H-demo: doc page not found
PATH_ORDER_DETAIL = "/api/v1/futures/trade/get_order_detail"
PATH_PENDING_ORDERS = "/api/v1/futures/trade/get_pending_orders"
PATH_HISTORY_ORDERS = "/api/v1/futures/trade/get_history_orders"
PATH_HISTORY_TRADES = "/api/v1/futures/trade/get_history_trades"
PATH_PENDING_POSITIONS = "/api/v1/futures/position/get_pending_positions"
PATH_ACCOUNT = "/api/v1/futures/account"
PATH_CHANGE_LEVERAGE = "/api/v1/futures/account/change_leverage"
PATH_CHANGE_MARGIN_MODE = "/api/v1/futures/account/change_margin_mode"
PATH_LEVERAGE_MARGIN_MODE = "/api/v1/futures/account/get_leverage_margin_mode"

PRIVATE_PATH_PREFIX = "/api/v1/futures/"
MARGIN_COIN = "USDT"

# -- rate limits [2.13] ---------------------------------------------------------------
PRIVATE_REST_PER_S = 10  # per UID: place, detail, pending, history, positions, account, leverage (H)
CANCEL_PER_S = 5  # per UID: cancel_orders, batch_order (H)
CANCEL_LIMITED_PATHS = frozenset({PATH_CANCEL_ORDERS})
# cancel_all_orders: limit not documented; counted in the cancel group to be safe (L).
CANCEL_LIMITED_PATHS_ASSUMED = frozenset({PATH_CANCEL_ORDERS, PATH_CANCEL_ALL_ORDERS})

# -- paging [2.4] -----------------------------------------------------------------------
PAGE_DEFAULT_LIMIT = 10  # the server default when ``limit`` is omitted (H): always send it
PAGE_MAX_LIMIT = 100  # (H)

# -- authentication [1] -----------------------------------------------------------------
NONCE_LENGTH = 32  # "32 bits" in the docs = 32 characters; not enforced by the server (H/M)
# Allowed clock skew of ``timestamp``: not documented anywhere (unknown). The fake
# uses this window; the real value may differ (L).
RECV_WINDOW_MS = 60_000
# Error codes for auth failures. Only 10003 (api-key empty) and 10007 (sign
# error) are documented (H); what a stale timestamp, a replayed nonce or an
# unknown key get is unknown -- 10007 is the best guess for all three (L).
CODE_API_KEY_EMPTY = 10003
CODE_IP_NOT_ALLOWED = 10004
CODE_SIGNATURE = 10007
CODE_STALE_TIMESTAMP = 10007  # (L)
CODE_NONCE_REUSED = 10007  # (L) whether nonces may be reused at all is unknown
CODE_UNKNOWN_API_KEY = 10007  # (L)

# -- error codes [6] ------------------------------------------------------------------------
CODE_NETWORK_ERROR = 10001  # (H) reads: transient; writes: outcome unknown
CODE_PARAMETER = 10002
CODE_TOO_MANY_REQUESTS = 10005
CODE_TOO_FREQUENT = 10006
CODE_ORDER_STATUS = 10013  # (H, only in the cancel example) e.g. cancelling a filled order
CODE_MARKET_NOT_EXISTS = 20001
CODE_RISK_LIMIT = 20002
CODE_INSUFFICIENT_BALANCE = 20003
CODE_INVALID_LEVERAGE = 20005
CODE_OPEN_ORDERS_BLOCK_CHANGE = 20006
CODE_ORDER_NOT_FOUND = 20007  # "please try it later": can lag right after placement (L)
CODE_INSUFFICIENT_AMOUNT = 20008
CODE_POSITION_NOT_EXIST = 30004
CODE_MAX_BUY_PRICE = 30014
CODE_MIN_SELL_PRICE = 30015
CODE_QTY_TOO_SMALL = 30016
CODE_QTY_BELOW_MIN = 30017
CODE_REDUCE_ONLY_NO_POSITION = 30018
CODE_REDUCE_ONLY_SAME_SIDE = 30019
CODE_DUPLICATE_CLIENT_ID = 30042  # (H) proof that an order with that id exists

CODES_BALANCE = frozenset({20003, 20008})
CODES_QUANTITY = frozenset({30013, 30016, 30017, 30039})
CODES_PRICE_LIMIT = frozenset({30001, 30002, 30003, 30014, 30015})
CODES_REDUCE_ONLY = frozenset({30018, 30019})
CODES_TPSL = frozenset({30005, 30006, 30007, 30008, 30009, 30010, *range(30020, 30039), 30041})
CODES_LEVERAGE = frozenset({20005, 20006, 20009})
CODES_ACCOUNT_BLOCKED = frozenset({20004, 20010, 20011, 20012, 20013, 20014, 20015, 30040, *range(40001, 40009)})
# Refusals of a trading request: retrying cannot help, the request did nothing.
CODES_TRADING_REFUSED = (
    CODES_BALANCE | CODES_QUANTITY | CODES_PRICE_LIMIT | CODES_REDUCE_ONLY | CODES_TPSL | CODES_LEVERAGE
    | CODES_ACCOUNT_BLOCKED
    | frozenset({20002, 30004, 30011, 30012, 30042, 10013, 20007})
)
# A rate-limit reply (10005/10006, HTTP 429) to a write means the write was not
# executed (L: the doc's classification), so it is a definite refusal, not an
# unknown outcome; set False to resolve such writes by client id instead.
RATE_LIMITED_WRITE_NOT_EXECUTED = True
# "System error" codes seen in the wild (M, low confidence): transient on
# reads, outcome unknown on writes -- as is every code not in the table.
CODES_SYSTEM_ERROR = frozenset({2, 300105, CODE_NETWORK_ERROR})

# -- client order ids [3] -----------------------------------------------------------
# Max length and charset are not documented. Accepted in the wild: 10-26 chars
# incl. '_' (H/M). We keep to <= 32 of [A-Za-z0-9], which also avoids any
# URL-encoding/signing ambiguity (L). The fake enforces this rule.
CLIENT_ID_MAX_LEN = 32
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9]{1,32}")
# Uniqueness scope of a client id (open orders only? a window? all history?) is
# unknown: never reuse one. The fake rejects a duplicate over the account's
# whole history (the strictest reading) (L).

# -- enums (H) and their wire variants (M) --------------------------------------------
ORDER_TYPES = ("LIMIT", "MARKET")
EFFECTS = ("GTC", "IOC", "FOK", "POST_ONLY")
STOP_TYPES = ("MARK_PRICE", "LAST_PRICE")
MARGIN_MODES = ("ISOLATION", "CROSS")
POSITION_MODES = ("ONE_WAY", "HEDGE")
ORDER_STATUSES = (
    "INIT", "NEW", "PART_FILLED", "CANCELED", "FILLED", "PART_FILLED_CANCELED", "EXPIRED", "SYSTEM_CANCELED",
)
OPEN_STATUSES = frozenset({"INIT", "NEW", "PART_FILLED"})
# Live quirks (M): statuses with a trailing underscore ("NEW_"); websocket enums
# in mixed case ("Buy", "Limit"); stop types as "Mark"/"Last" (and "MARK" in the
# docs' own example); REST position side as BUY/SELL instead of LONG/SHORT.
STOP_TYPE_ALIASES = {"MARK": "MARK_PRICE", "LAST": "LAST_PRICE"}
POSITION_SIDE_ALIASES = {"BUY": "LONG", "SELL": "SHORT"}
MARKET_PRICE_TEXT = "market"  # history orders carry price "market" for market orders (M)

# -- closing a position [4] -----------------------------------------------------------------
# One-way mode: a close is the opposite side with reduceOnly=true and no
# tradeSide/positionId (L, from codes 30018/30019). Hedge mode is not supported
# by this client: the close-side rule there is ambiguous in the docs.
SUPPORTED_POSITION_MODE = "ONE_WAY"

# -- fake-exchange matching assumptions (L) ---------------------------------------------------
# A POST_ONLY limit that would trade at once is accepted and then cancelled
# (status CANCELED), not refused with an error code (L).
POST_ONLY_CROSSING_CANCELS = True
# History queries filter ``startTime``/``endTime`` by the order's creation time
# (L): an order created before a gap but filled during it is NOT in
# ``history?startTime=<gap start>``; gap filling must also re-read every order it
# knew as open.
HISTORY_FILTERS_BY_CTIME = True

# -- private websocket [5] --------------------------------------------------------------------
WS_CHANNEL_ORDER = "order"
WS_CHANNEL_POSITION = "position"
WS_CHANNEL_BALANCE = "balance"
WS_CHANNEL_TPSL = "tpsl"
WS_PRIVATE_CHANNELS = (WS_CHANNEL_ORDER, WS_CHANNEL_POSITION, WS_CHANNEL_BALANCE)
# The server sends {"op":"connect"} on open; the Java demo logs in only after it (H-demo).
WS_PRIVATE_WAIT_FOR_CONNECT = True
# Login timestamp unit: seconds in the Python/Go demos, ms in the Java demo (H,
# demos disagree). Seconds is the majority (L). The fake accepts both.
WS_LOGIN_TIMESTAMP_UNIT = "s"
# Login ack {"op":"login","data":{"result":true}} (M); the failure shape is
# unknown: anything else on op=login (or a close) is a failure.
WS_LOGIN_OP = "login"
# Whether private channels need a subscribe at all is unknown (the Java demo
# says data is pushed after login); subscribing is harmless (H-demo). The fake
# pushes only subscribed channels, the stricter reading.
WS_PRIVATE_SUBSCRIBE = True
# Push ``data`` is a list in the docs and an object on the wire (H-demo/M):
# parsers accept both. ``ctime``/``mtime`` on the websocket are ISO-8601 strings
# (H-demo/M), REST ones millisecond ints or digit strings (M).
# ``order`` push: the reduce-only flag is spelled ``reductionOnly`` and
# ``positionType`` is the margin mode (H). ``dealAmount`` is the cumulative
# filled base quantity (L: unit undocumented).
WS_DEAL_AMOUNT_IS_BASE_QTY = True
# Default keep-alive for the private socket: it can be silent for hours (no
# orders), so liveness is judged by pong replies, not by data.
WS_PRIVATE_PING_INTERVAL_S = 10.0
WS_PRIVATE_IDLE_TIMEOUT_S = 25.0


def private_subscribe_message(channels: tuple[str, ...] | list[str] = WS_PRIVATE_CHANNELS) -> dict[str, object]:
    """``{"op":"subscribe","args":[{"ch":"order"},...]}`` -- no symbol on private channels (H-demo)."""
    return {"op": "subscribe", "args": [{"ch": ch} for ch in channels]}


def login_timestamp(wall_ms: int) -> int:
    """The login ``timestamp`` in the unit chosen above."""
    return wall_ms // 1000 if WS_LOGIN_TIMESTAMP_UNIT == "s" else wall_ms


def close_side(position_qty: float) -> str:
    """The order side that reduces a one-way position of signed ``position_qty`` (L)."""
    if position_qty == 0:
        raise ValueError("no position to close")
    return "SELL" if position_qty > 0 else "BUY"
