"""Server-sent events, written and read one way everywhere in BMO."""
