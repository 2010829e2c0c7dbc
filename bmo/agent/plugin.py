"""The agent core's registration with the host (placeholder until the agent core lands)."""
