"""What every command handler receives: parsed flags, effective config,
the resolved workspace and a logger. Handlers live in their own packages and
return an exit code; they never parse arguments themselves."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from laptop_agents.config import AppConfig, LoadedConfig
from laptop_agents.workspace import Workspace


@dataclass
class CommandContext:
    command: str
    args: argparse.Namespace
    loaded: LoadedConfig
    workspace: Workspace
    log: logging.Logger

    @property
    def config(self) -> AppConfig:
        return self.loaded.config
