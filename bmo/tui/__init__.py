"""The Textual TUI: a client of a running BMO server's native API."""
