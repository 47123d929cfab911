"""Configuration: UCI file -> typed, checked `Config`.

Public API: `load_config`, `try_reload`, `ConfigError` (and the dataclasses in `model`).
"""

from haig.config.errors import ConfigError, Problem
from haig.config.loader import load_config, try_reload
from haig.config.model import Config, Main, Peer, Service, Uplink

__all__ = ["Config", "ConfigError", "Main", "Peer", "Problem", "Service", "Uplink",
           "load_config", "try_reload"]
