"""BMO: an agent host exposed through an OpenAI-compatible HTTP surface."""

__version__ = "0.1.0"
