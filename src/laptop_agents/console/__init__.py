"""The operator's console: web dashboard, live terminal view, alerts and metrics.

Every part reads a session through :class:`~laptop_agents.console.view.SessionView`
and steers it through :class:`~laptop_agents.console.view.SessionControl`
(both Protocols), so none of them imports the runner and each is tested on its
own. Modules are imported lazily by their users: the web stack (starlette,
uvicorn), apprise and prometheus-client load only when a feature is switched on.
"""

from laptop_agents.console.view import (
    LATEST,
    STREAMS,
    CompositeView,
    ControlRefused,
    FeedLogHandler,
    FeedSizes,
    LiveFeed,
    Recent,
    SessionControl,
    SessionView,
    Stream,
)

__all__ = [
    "LATEST",
    "STREAMS",
    "CompositeView",
    "ControlRefused",
    "FeedLogHandler",
    "FeedSizes",
    "LiveFeed",
    "Recent",
    "SessionControl",
    "SessionView",
    "Stream",
]
