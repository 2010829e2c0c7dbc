"""Delivery: turning a run's events into the answer body or stream, and its chunks."""
