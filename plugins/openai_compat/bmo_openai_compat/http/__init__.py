"""Route handlers: the HTTP side of each compat route."""
