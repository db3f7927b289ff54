"""One base for every exception this program raises on purpose.

``except LaptopAgentsError`` catches every problem the code foresaw (a bad
flag, a bad file, a damaged store, an exchange refusal); anything else that
reaches the top is a bug and exits as a crash. Each family names the exit
code a command returns for it (:attr:`LaptopAgentsError.exit_code`), so a
handler can map a foreseen failure to its code without a table of its own.
Classes that used to derive from ``ValueError`` still do, so older
``except ValueError`` call sites keep working.

The tree (module in brackets)::

    LaptopAgentsError
    ├── UsageError                          exit 2: the user asked for something invalid
    │   ├── CliError                        [cli]
    │   ├── ConfigError                     [config]
    │   ├── DocumentError                   [domain.documents]  profile / strategy file text
    │   ├── StrategyConfigError             [strategy.params]
    │   ├── GridError                       [backtest.research.walkforward]  --grid, --splits
    │   ├── SpaceError                      [backtest.research.space]  --space, search hints
    │   ├── StudyError                      [backtest.research.sweep]  study storage, joining a study
    │   ├── FetchArgError                   [backtest.fetch]
    │   ├── RunIdError                      [workspace]
    │   ├── DashboardConfigError            [console.app]
    │   ├── ControlRefused                  [console.view]  a dashboard control the session cannot honour
    │   ├── CredentialsError                [exchange.credentials]
    │   ├── MockFaultsError                 [sources.mock]
    │   └── FaultSpecError                  [testing.fake_exchange.faults]
    ├── InputDataError                      exit 9: a data file cannot be used
    │   ├── CandleFileError                 [sources.candle_files]
    │   ├── RecordingError                  [sources.recording]
    │   ├── SourceConfigError               [sources.factory]
    │   └── JournalError                    [store.journal]
    ├── DomainError                         a value breaks a domain invariant
    │   ├── SymbolError                     [domain.symbols]  (exit 2)
    │   ├── ProtocolError                   [exchange.protocol]
    │   └── ClientIdError                   [exchange.client_ids]
    ├── EngineStateError                    [engine]  stored state that does not fit the config
    ├── StoreError                          [store.state]
    │   ├── StoreCorruptError               exit 8
    │   ├── StoreWriteError                 exit 10
    │   └── StoreMismatchError              exit 14
    │       └── StoreAheadError
    ├── AlreadyRunningError                 [lock]      exit 7
    ├── ReportError                         [report.run_data]
    ├── SessionFatal                        [session.state]  ends a session; exit code by its stop reason
    ├── ReconcileMismatch                   [session.execution]  live: exchange vs books, exit 13
    ├── ExchangeError                       [exchange.errors]  (its own tree is in that module)
    └── FakeExchangeError, OrderRefused     [testing.fake_exchange]
"""

from __future__ import annotations

from typing import ClassVar

from laptop_agents.exit_codes import ExitCode


class LaptopAgentsError(Exception):
    """Base of every foreseen failure; see the module docstring for the tree."""

    exit_code: ClassVar[int] = ExitCode.CRASH


class UsageError(LaptopAgentsError, ValueError):
    """A flag, config value, parameter or name the program cannot accept."""

    exit_code: ClassVar[int] = ExitCode.CONFIG_ERROR


class InputDataError(LaptopAgentsError, ValueError):
    """A data file (candles, recording, journal) that cannot be used as it is."""

    exit_code: ClassVar[int] = ExitCode.BAD_INPUT
