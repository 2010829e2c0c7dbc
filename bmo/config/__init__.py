"""Configuration: sections declared by plugins, merged from layered sources."""

from bmo.config.loader import Config, ConfigError, Section, load_config

__all__ = ["Config", "ConfigError", "Section", "load_config"]
