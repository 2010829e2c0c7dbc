"""The agent core: sessions, runs, the loop, providers, tools and permissions."""
