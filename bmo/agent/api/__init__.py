"""The native session API: ``/v1/sessions`` for the TUI and scripts."""
