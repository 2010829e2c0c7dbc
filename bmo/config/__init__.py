"""Configuration: sections declared by plugins, merged from layered sources."""

from bmo.config.loader import Config, ConfigError, Section, load_config
from bmo.config.toml_text import to_toml

__all__ = ["Config", "ConfigError", "Section", "load_config", "to_toml"]
