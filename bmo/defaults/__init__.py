"""The host's own default plugins, registered like any third-party plugin."""
