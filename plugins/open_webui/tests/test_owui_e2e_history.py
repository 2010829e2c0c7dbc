"""End to end with the real Open WebUI: what a chat user does to a conversation, and the history the model got.

Regenerate, edit an earlier message and resend, "Continue Response", a model switch, two models
compared in one chat, and an image, each sent through Open WebUI's own chat API with chat and
message ids as its web UI sends them (``user_message`` with ``parentId``, ``message_ids`` per model,
``assistant_message_id`` to continue, ``files`` for an image). Open WebUI 0.12 rebuilds the messages
from its own stored chat tree, so what reaches BMO is what its UI shows; each step then checks what
the fake upstream received. Opt-in like ``test_owui_e2e.py`` (``BMO_E2E_OPEN_WEBUI=1``).
"""

from __future__ import annotations

import os
import time
import uuid

import aiohttp
import pytest
from owui_server import MODEL
from test_owui_e2e import TOKEN, _bmo_runs, _until, _write_timings, running_stack

from bmo.agent.config import LengthRecoveryOptions
from bmo.testing.fake_upstream import FakeUpstream, reply, tool_call
from bmo.testing.fixtures import provider_toml

OTHER = "fake/other-model"
CONTINUE_PROMPT = LengthRecoveryOptions().continue_prompt
# A 1x1 PNG, the way Open WebUI keeps a pasted image in the chat: a data URL in the message's files.
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")

pytestmark = [
    pytest.mark.open_webui_e2e,
    pytest.mark.skipif(os.environ.get("BMO_E2E_OPEN_WEBUI") != "1",
                       reason="opt-in: set BMO_E2E_OPEN_WEBUI=1 (examples/open_webui/run_e2e.sh does)"),
]


def text_of(content) -> str:
    """A message's text; an image part reads ``[image <url>]``."""
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        if part.get("type") == "text":
            out.append(part["text"])
        elif part.get("type") == "image_url":
            out.append(f"[image {part['image_url']['url']}]")
    return "\n".join(out)


def is_turn(body: dict) -> bool:
    """An agent turn (BMO offers its tools), not the ambiguity router nor a direct task call."""
    names = {(t.get("function") or {}).get("name") for t in body.get("tools") or []}
    return bool(names) and "bmo_route" not in names


def model_behind_bmo(body: dict):
    """The router says clear; a continuation gets a tail; anything else is answered naming the model."""
    names = {(t.get("function") or {}).get("name") for t in body.get("tools") or []}
    if "bmo_route" in names:
        return reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    asked = text_of(users[-1]["content"]) if users else ""
    if asked == CONTINUE_PROMPT:
        return reply(" and that is all.")
    return reply(f"{body['model']} says: {asked.splitlines()[0] if asked else ''}", chunks=2)


def history(body: dict) -> list[tuple[str, str]]:
    """The (role, text) of every user and assistant message the model was sent."""
    return [(m["role"], text_of(m.get("content"))) for m in body["messages"] if m["role"] in ("user", "assistant")]


class Chat:
    """One Open WebUI chat driven the way its web UI drives it; ``up`` is the model behind BMO."""

    def __init__(self, stack, up: FakeUpstream, chat_id: str):
        self.stack, self.up, self.chat_id = stack, up, chat_id

    async def send(self, *, models: list[str], content: str | None = None, parent: str | None = None,
                   user_id: str | None = None, files: list | None = None, continue_id: str | None = None,
                   socket: bool = False) -> tuple[dict[str, dict], list[dict]]:
        """One request to /api/chat/completions: (the saved answers by model, the agent turns BMO sent upstream).

        ``user_id`` of an existing message regenerates its answer; ``continue_id`` continues that answer;
        ``socket`` sends a socket session id, as the web UI does, so Open WebUI fans out one task per model.
        """
        http, url, auth = self.stack.http, self.stack.owui_url, self.stack.auth
        before = len(self.up.chat_requests)
        answers = {m: continue_id or str(uuid.uuid4()) for m in models}
        body = {"model": models[0], "stream": True, "chat_id": self.chat_id, "messages": [],
                "message_ids": [{"model_id": m, "message_id": mid} for m, mid in answers.items()]}
        if continue_id:
            body["assistant_message_id"] = continue_id
        else:
            body["user_message"] = {"id": user_id or str(uuid.uuid4()), "role": "user", "content": content,
                                    "parentId": parent, "models": models, "files": files or []}
        if socket:
            body["session_id"] = f"e2e-socket-{uuid.uuid4().hex[:8]}"
        async with http.post(f"{url}/api/chat/completions", headers=auth, json=body) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()

        async def saved():
            async with http.get(f"{url}/api/v1/chats/{self.chat_id}", headers=auth) as r:
                messages = (await r.json())["chat"]["history"]["messages"]
            done = {m: messages.get(mid) or {} for m, mid in answers.items()}
            if all(d.get("done") or d.get("error") for d in done.values()):
                return {m: {**d, "id": answers[m]} for m, d in done.items()}
            return None

        saved_answers = await _until(saved, 60, f"the answers of {models} in the Open WebUI chat")
        turns = [r.body for r in self.up.chat_requests[before:] if is_turn(r.body)]
        for turn in turns:  # shown with -s: the report of what each step sent upstream
            print(f"{content or 'continue'!r} -> {turn['model']}: {[f'{r}: {t[:40]}' for r, t in history(turn)]}")
        return saved_answers, turns


async def new_chat(stack, models: list[str]) -> str:
    async with stack.http.post(f"{stack.owui_url}/api/v1/chats/new", headers=stack.auth, json={"chat": {
            "title": "e2e history", "models": models, "messages": [],
            "history": {"messages": {}, "currentId": None}}}) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["id"]


async def timeline(stack, request_id: str) -> list[str]:
    async with stack.http.get(f"{stack.bmo.url}/v1/openai-compat/runs/{request_id}/events",
                              headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200, await resp.text()
        return [e["event"] for e in (await resp.json())["data"]]


def said(model: str, text: str) -> tuple[str, str]:
    return ("assistant", f"{model.split('/', 1)[1]} says: {text}")


async def test_regenerate_edit_continue_switch_compare_and_image_send_the_history_the_chat_shows(tmp_path):
    timings: dict[str, float] = {}
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    up = FakeUpstream(models=["fake-model", "other-model"], default=model_behind_bmo)
    async with up, aiohttp.ClientSession() as http:
        config_text = (
            "[options.openai_compat]\nenabled = true\ntool_policy = \"auto_approve\"\nambiguity_action = \"code\"\n\n"
            f"[agent]\ndefault_model = \"{MODEL}\"\nworkspace = \"{workspace}\"\n\n"
            + provider_toml(up, extra="timeout_s = 10.0\nmax_retries = 0\nvision_models = [\"other-model\"]\n"))
        async with running_stack(tmp_path, http, config_text, timings) as stack:
            started = time.monotonic()
            chat = Chat(stack, up, await new_chat(stack, [MODEL]))
            session = f"openwebui-{chat.chat_id}@{MODEL.replace('/', ':')}"

            # Three ordinary turns.
            parent, users, replies = None, {}, {}
            for text in ("one", "two", "three"):
                users[text] = str(uuid.uuid4())
                answers, turns = await chat.send(models=[MODEL], content=text, parent=parent, user_id=users[text])
                parent = replies[text] = answers[MODEL]["id"]
            three = [("user", "one"), said(MODEL, "one"), ("user", "two"), said(MODEL, "two"), ("user", "three")]
            assert history(turns[-1]) == three

            # Regenerate the last answer: the same user message, a new answer id. The model gets the chat as
            # shown, with neither the discarded answer nor the question twice; BMO records the fork.
            answers, turns = await chat.send(models=[MODEL], content="three", parent=None, user_id=users["three"])
            assert answers[MODEL]["content"] == "fake-model says: three" and not answers[MODEL].get("error")
            assert len(turns) == 1 and history(turns[0]) == three
            rows = await _bmo_runs(http, stack.bmo.url, session_id=session)
            assert "session_forked" in await timeline(stack, rows[0]["request_id"])

            # Edit the second question and resend: a sibling of it under the first answer.
            answers, turns = await chat.send(models=[MODEL], content="two, edited", parent=replies["one"])
            edited = answers[MODEL]["id"]
            assert history(turns[0]) == [("user", "one"), said(MODEL, "one"), ("user", "two, edited")]

            # Continue Response on that answer: the model sees it and is asked to go on; only the tail is new.
            answers, turns = await chat.send(models=[MODEL], continue_id=edited)
            assert history(turns[0]) == [("user", "one"), said(MODEL, "one"), ("user", "two, edited"),
                                         said(MODEL, "two, edited"), ("user", CONTINUE_PROMPT)]
            assert answers[MODEL]["content"].endswith("and that is all."), answers[MODEL]
            continued = answers[MODEL]["content"]

            # Switch the chat's model: the other model's session starts from the chat as shown.
            answers, turns = await chat.send(models=[OTHER], content="four", parent=edited)
            assert not answers[OTHER].get("error"), answers[OTHER]
            assert history(turns[0]) == [("user", "one"), said(MODEL, "one"), ("user", "two, edited"),
                                         ("assistant", continued), ("user", "four")]
            four = answers[OTHER]["id"]

            # Compare both models side by side: one request, one task per model, no 409 between them.
            answers, turns = await chat.send(models=[MODEL, OTHER], content="five", parent=four, socket=True)
            assert {m: a["content"] for m, a in answers.items()} == {
                MODEL: "fake-model says: five", OTHER: "other-model says: five"}, answers
            assert sorted(t["model"] for t in turns) == ["fake-model", "other-model"]
            for turn in turns:
                assert history(turn)[-3:] == [("user", "four"), said(OTHER, "four"), ("user", "five")]
            [other_pane] = [t for t in turns if t["model"] == "other-model"]
            assert history(other_pane) == [("user", "one"), said(MODEL, "one"), ("user", "two, edited"),
                                           ("assistant", continued), ("user", "four"), said(OTHER, "four"),
                                           ("user", "five")]
            assert not await _bmo_runs(http, stack.bmo.url, outcome="queued")

            # An image on the text-only model: a note in its place, answered; the next turn works too.
            answers, turns = await chat.send(models=[MODEL], content="what is this?", parent=answers[MODEL]["id"],
                                             files=[{"type": "image", "url": PNG}])
            assert not answers[MODEL].get("error"), answers[MODEL]
            asked = history(turns[0])[-1][1]
            assert asked.startswith("what is this?") and "left out" in asked and "[image" not in asked
            answers, turns = await chat.send(models=[MODEL], content="and now?", parent=answers[MODEL]["id"])
            assert not answers[MODEL].get("error") and history(turns[0])[-1] == ("user", "and now?")
            assert not any("[image" in text for _, text in history(turns[0]))

            # The same image to a vision model reaches the upstream unchanged.
            answers, turns = await chat.send(models=[OTHER], content="and this?", parent=four,
                                             files=[{"type": "image", "url": PNG}])
            assert not answers[OTHER].get("error"), answers[OTHER]
            parts = turns[0]["messages"][-1]["content"]
            assert {"type": "image_url", "image_url": {"url": PNG}} in [
                {"type": p["type"], "image_url": {"url": p["image_url"]["url"]}} for p in parts if p["type"] == "image_url"]
            timings["test_s"] = round(time.monotonic() - started, 2)
    _write_timings({f"history_{k}": v for k, v in timings.items()})
