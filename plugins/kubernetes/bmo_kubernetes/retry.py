"""Which API failures are worth another try, and how long to wait before it.

Hand-written rather than tenacity: the policy is a dozen lines, and it needs what a generic
decorator makes awkward: ``Retry-After`` honoured, one time budget shared by every attempt
(each request's timeout clipped to what is left), and the last error kept for the run's outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass
class ApiFailure(Exception):
    """One failed attempt: ``transient`` says whether trying again may help."""

    message: str
    transient: bool
    status: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds only, as the API server sends)."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def backoff(retry: int, initial: float, ceiling: float, failure: ApiFailure) -> float:
    """Delay before retry number ``retry`` (1-based): the server's Retry-After, else exponential with jitter."""
    if failure.retry_after is not None:
        return failure.retry_after
    step = min(ceiling, initial * 2 ** (retry - 1))
    return step / 2 + random.uniform(0, step / 2)  # jitter: clients failing together do not retry together
