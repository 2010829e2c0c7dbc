"""Open WebUI integration for BMO: chat ids become sessions, background tasks skip the agent loop."""

__version__ = "0.1.0"
