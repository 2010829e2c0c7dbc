"""Test support shipped with BMO, so plugin authors' tests can use it too."""
