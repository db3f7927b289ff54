"""exchange layer: everything that speaks Bitunix.

- ``protocol``  every wire fact (paths, channel names, limits, codes) in one place
- ``errors``    typed errors per family (rate limited, auth, parameter, market,
                trading, transient, malformed reply, bad frame)
- ``parsers``   REST envelope/payload and websocket push parsing (pure)
- ``ratelimit`` sliding-window limiter; the budget REST and websocket share
- ``rest``      async REST market client (paging, retries for idempotent reads)
- ``ws``        reconnecting public websocket client (JSON ping, 5 msg/s, idle timeout)
- ``feed``      websocket events + REST -> closed candles, ticks, funding, SourceErrors
- ``signing``   request signing for the private API
- ``fake/``     a fake Bitunix exchange on 127.0.0.1 with fault injection
"""
