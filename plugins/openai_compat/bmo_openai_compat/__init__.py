"""BMO's OpenAI-compatible surface: chat completions behind the agent loop, the run ledger, posture."""

__version__ = "0.1.0"
