"""Model providers: the interface, and the built-in ``openai`` kind."""
