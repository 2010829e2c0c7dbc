"""Trace records (JSON lines) and OpenTelemetry spans."""
