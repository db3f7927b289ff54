"""The chaos drill and the accelerated soak: ``laptop-agents drill``.

The drill proves the claim the product makes -- a month unattended loses
nothing, doubles nothing and stops safely when the world breaks -- on the
machine it runs on, in one page:

- it starts two fake Bitunix exchanges on 127.0.0.1 serving the same seeded
  market at high speed, and on each a paper session under the real watchdog
  (``laptop-agents watchdog -- run --source bitunix ...``), as separate
  processes driven only through the CLI and their files;
- on one of them (the *faulted* run) it plays a schedule of faults: the
  exchange's (dropped and silent sockets, garbage and torn frames, duplicate
  and out-of-order candles, gaps, HTTP 429/5xx/slow REST, clock jumps) and
  the machine's (``kill -9``, a frozen process, a full disk, a torn journal
  line, a torn write-ahead log); the other (the *baseline*) runs fault-free;
- at the end it checks the invariants (:mod:`.invariants`) against the
  baseline and against a replay of the market through the product's own
  Engine, and writes a scorecard (JSON, HTML, console).

``--soak`` runs one faulted session through a month (or ``--days``) of
one-minute candles with the schedule repeating and samples its resources.

Nothing in the product imports this package; it sits beside the fake exchange.
"""
