"""bmo-hello-plugin: the smallest complete third-party BMO plugin."""

__version__ = "0.1.0"
