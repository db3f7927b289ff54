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
- ``protocol_private``  every private-API wire fact, with its confidence tag
- ``credentials``       API key + secret that never show themselves
- ``client_ids``        deterministic client order ids (run, candle, sequence)
- ``private_models``    typed orders/positions/balance, tolerant of doc-vs-wire shapes
- ``private_rest``      signed REST client: orders, positions, account; unknown outcomes
- ``private_updates``   private frames -> typed updates; fills counted exactly once
- ``ws_private``        private websocket: login, channels, gap signal on reconnect
- ``private_feed``      private updates with every gap filled from REST
- ``flatten``           cancel all + close all on one symbol, verified on the exchange
- ``fake/``     a fake Bitunix exchange on 127.0.0.1 with fault injection; it trades
"""
