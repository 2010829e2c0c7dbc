"""The ``bmo`` command line, one module per command group."""
