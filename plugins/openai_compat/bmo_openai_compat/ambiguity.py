"""The ambiguity router: before a session's first turn runs, ask the model whether it is clear.

One direct model call with exactly one tool, ``bmo_route``, forced by ``tool_choice``. What an
ambiguous request leads to is ``ambiguity_action``: ``ask`` answers with the model's question,
``research`` runs the agent with read-only tools, ``code`` runs the full agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bmo.agent.errors import AgentError
from bmo.agent.messages import ChatMessage

ROUTE_TOOL_NAME = "bmo_route"
ROUTE_TOOL = {
    "type": "function",
    "function": {
        "name": ROUTE_TOOL_NAME,
        "description": "Classify the user's request before any work starts.",
        "parameters": {
            "type": "object",
            "properties": {
                "decision": {
                    "type": "string", "enum": ["clear", "ambiguous"],
                    "description": "clear: you know what to do. ambiguous: a reasonable person would ask first.",
                },
                "question": {
                    "type": "string",
                    "description": "When ambiguous: the one short question that would resolve it. Else empty.",
                },
            },
            "required": ["decision", "question"],
        },
    },
}
TOOL_CHOICE = {"type": "function", "function": {"name": ROUTE_TOOL_NAME}}
ROUTER_PROMPT = (
    "You triage requests for a coding and research agent. Call bmo_route exactly once. Choose "
    "'ambiguous' only when the request cannot be acted on sensibly without asking the user something; "
    "then put that single clarifying question in 'question'. Otherwise choose 'clear'."
)


@dataclass
class RouteDecision:
    decision: str  # clear | ambiguous
    question: str = ""
    usage: object = None
    note: str = ""  # why the router's answer was not usable, when it was not

    @property
    def ambiguous(self) -> bool:
        return self.decision == "ambiguous"


def asks_router(coordinator, model: str) -> bool:
    """Whether ``model``'s provider is asked (``[providers.NAME] ambiguity_router``; off for small local models)."""
    try:
        provider, _ = coordinator.resolve_model(model)
    except AgentError:  # an unknown model is reported by the call itself
        return True
    return getattr(provider, "ambiguity_router", True)


def is_first_user_turn(conversation: list[ChatMessage]) -> bool:
    """Exactly one user message and no answer yet: the session's first turn."""
    users = sum(1 for m in conversation if m.role == "user")
    return users == 1 and not any(m.role in ("assistant", "tool") for m in conversation)


async def route(coordinator, model: str, conversation: list[ChatMessage], sampling: dict | None = None, *,
                conversation_id: str | None = None, run_id: str | None = None) -> RouteDecision:
    """Ask the model; agent errors (upstream down, unknown model) propagate to the caller.

    Its span is ``triage <model>``, tied to the session (``gen_ai.conversation.id``) and the request.
    """
    messages = [ChatMessage(role="system", content=ROUTER_PROMPT)]
    messages += [m for m in conversation if m.role in ("system", "user")]
    completion = await coordinator.complete(model, messages, tools=[ROUTE_TOOL], tool_choice=TOOL_CHOICE,
                                            sampling={k: v for k, v in (sampling or {}).items() if k == "seed"},
                                            purpose="triage", conversation_id=conversation_id, run_id=run_id)
    usage = getattr(completion, "usage", None)
    calls = [c for c in (completion.tool_calls or []) if c.function.name == ROUTE_TOOL_NAME]
    if not calls:
        return RouteDecision("clear", usage=usage, note="the router answered without calling bmo_route")
    try:
        args = json.loads(calls[0].function.arguments or "{}")
    except ValueError:
        return RouteDecision("clear", usage=usage, note="bmo_route arguments were not JSON")
    decision = args.get("decision") if isinstance(args, dict) else None
    question = (args.get("question") or "").strip() if isinstance(args, dict) else ""
    if decision == "ambiguous" and question:
        return RouteDecision("ambiguous", question, usage)
    if decision not in ("clear", "ambiguous"):
        return RouteDecision("clear", usage=usage, note=f"unknown bmo_route decision {decision!r}")
    return RouteDecision("clear", usage=usage, note="" if decision == "clear" else "ambiguous without a question")
