"""BMO's benchmarks: BMO vs the upstream directly vs LiteLLM proxy, one command (see bench/README.md)."""
