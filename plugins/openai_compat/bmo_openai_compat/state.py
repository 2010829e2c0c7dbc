"""What the plugin keeps per host: its options and its ledger."""

from __future__ import annotations

from dataclasses import dataclass

from bmo.agent import maybe_coordinator
from bmo_openai_compat.config import OpenAICompatOptions, options_of
from bmo_openai_compat.observe.ledger import Ledger

STATE_KEY = "openai_compat"


@dataclass
class CompatState:
    options: OpenAICompatOptions
    ledger: Ledger | None = None  # opened at startup, once the host's database is


def state_of(host) -> CompatState:
    """The plugin's state on ``host``, created on first use from the host's config."""
    state = host.state.get(STATE_KEY)
    if state is None:
        state = host.state[STATE_KEY] = CompatState(options=options_of(host.config))
    return state


def advertised_model_ids(host) -> list[str]:
    """What ``GET /v1/models`` lists: ``advertised_models`` narrowed to what providers serve, or all."""
    options = state_of(host).options
    coordinator = maybe_coordinator(host)
    if coordinator is None:
        return list(options.advertised_models)
    served = list(coordinator.model_ids())
    if not options.advertised_models:
        return served
    known = set(served)
    return [m for m in options.advertised_models if m in known]
