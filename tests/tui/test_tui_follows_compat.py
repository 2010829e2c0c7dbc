"""The TUI viewing a session shows what an OpenAI-compat request on it does: its permission prompt, answered
here, and Ctrl+X cancelling its run. Real in-process server, the real ``openai`` SDK, the fake upstream."""

from __future__ import annotations

import asyncio

import openai
import pytest

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import reply, tool_call
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server
from bmo.tui.app import BmoApp
from bmo.tui.widgets import PermissionScreen
from tests.tui.test_tui import until

MODEL = "fake/fake-model"
SESSION = "tui-watched-chat"


@pytest.fixture
async def server(tmp_path, fake_upstream):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config = (provider_toml(fake_upstream)
              + f'\n[agent]\nworkspace = "{workspace}"\ndefault_model = "{MODEL}"\n'
              + "\n[options.openai_compat]\nenabled = true\npermission_timeout_s = 60.0\n")
    running = await start_server(tmp_path / "data", config_toml=config)
    running.workspace = workspace
    yield running
    await running.stop()


def route_clear():
    """The ambiguity router's call on a session's first turn: the request is clear."""
    return reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])


async def compat_stream(server, prompt: str) -> tuple[str, Exception | None]:
    """One streamed compat request on SESSION: (the answer's content, the error the stream ended with)."""
    client = openai.AsyncOpenAI(base_url=server.api, api_key=server.token, _strict_response_validation=True,
                                timeout=60, max_retries=0)
    content, error = [], None
    try:
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True,
            extra_headers={"X-BMO-Session-Id": SESSION})
        async for chunk in stream:
            if chunk.choices:
                content.append(chunk.choices[0].delta.content or "")
    except openai.APIError as exc:
        error = exc
    finally:
        await client.close()
    return "".join(content), error


def dialog_open(app) -> bool:
    """The permission dialog is up with its buttons laid out (a click before that lands nowhere)."""
    return isinstance(app.screen, PermissionScreen) and bool(app.screen.query("#allow_once"))


async def wait_for(predicate, what: str, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_compat_requests_permission_prompt_is_answered_in_the_tui_and_the_answer_completes(server, fake_upstream):
    fake_upstream.script(route_clear(),
                         reply(tool_calls=[tool_call("write_file", {"path": "out.txt", "content": "42"}, id="c1")]),
                         reply("Written by the compat run."))
    co = coordinator_of(server.host)
    compat = asyncio.create_task(compat_stream(server, "write 42 to out.txt"))
    await wait_for(lambda: co.pending_permissions(SESSION), "the compat run's permission challenge")
    app = BmoApp(server.url, server.token, session_id=SESSION)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: dialog_open(app), "the compat run's permission dialog")
        assert app.screen.event["tool"] == "write_file"
        await pilot.pause()
        await pilot.click("#allow_once")
        content, error = await asyncio.wait_for(compat, 30)
        await until(pilot, lambda: ("assistant", "Written by the compat run.") in app.transcript(),
                    "the compat run's answer in the TUI")
        await until(pilot, lambda: app.run_status == "final_answer", "the followed run's outcome")
        assert not isinstance(app.screen, PermissionScreen)
    assert error is None and content.endswith("Written by the compat run.")
    assert (server.workspace / "out.txt").read_text() == "42"
    decided = [t for r, t in app.transcript() if r == "notice" and t.startswith("write_file: allow_once")]
    assert decided, app.transcript()


async def test_a_permission_decided_elsewhere_closes_the_dialog_without_answering_it(server, fake_upstream):
    fake_upstream.script(route_clear(),
                         reply(tool_calls=[tool_call("write_file", {"path": "no.txt", "content": "x"}, id="c1")]),
                         reply("Not written."))
    co = coordinator_of(server.host)
    compat = asyncio.create_task(compat_stream(server, "write no.txt"))
    await wait_for(lambda: co.pending_permissions(SESSION), "the compat run's permission challenge")
    app = BmoApp(server.url, server.token, session_id=SESSION)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: dialog_open(app), "the permission dialog")
        [pending] = co.pending_permissions(SESSION)
        assert await co.decide_permission(pending["id"], "deny", "someone-else")
        await until(pilot, lambda: not isinstance(app.screen, PermissionScreen), "the dialog to close")
        content, error = await asyncio.wait_for(compat, 30)
    assert error is None and content.endswith("Not written.")
    assert not (server.workspace / "no.txt").exists()
    assert not any(r == "error" for r, _ in app.transcript()), app.transcript()


async def test_ctrl_x_cancels_a_compat_run_and_ends_its_stream(server, fake_upstream):
    fake_upstream.script(route_clear(), reply("Thinking about it", stall=True))
    co = coordinator_of(server.host)
    compat = asyncio.create_task(compat_stream(server, "think forever"))
    await wait_for(lambda: co.active_run(SESSION) is not None and fake_upstream.chat_requests
                   and len(fake_upstream.chat_requests) >= 2, "the compat run's model call")
    app = BmoApp(server.url, server.token, session_id=SESSION)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: ("assistant", "Thinking about it") in app.transcript(),
                    "the compat run's streamed text in the TUI")
        await pilot.press("ctrl+x")
        content, error = await asyncio.wait_for(compat, 30)
        await until(pilot, lambda: app.run_status == "cancelled", "the followed run's cancelled outcome")
        await until(pilot, lambda: any(t.startswith("Run cancelled") for _, t in app.transcript()),
                    "the cancel notice")
    assert content == "Thinking about it"
    assert isinstance(error, openai.APIError) and "cancel" in str(error).lower()
    assert co.active_run(SESSION) is None


async def test_ctrl_x_in_the_prompt_cancels_the_tuis_own_run(server, fake_upstream):
    # The prompt (an Input) has focus and binds Ctrl+X to "cut": the app's binding must still win.
    fake_upstream.script(reply("Working on it", stall=True))
    app = BmoApp(server.url, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.session_id is not None, "a session")
        app.query_one("#prompt").value = "go"
        await pilot.press("enter")
        await until(pilot, lambda: ("assistant", "Working on it") in app.transcript(), "the streamed text")
        assert app.focused is app.query_one("#prompt")
        await pilot.press("ctrl+x")
        await until(pilot, lambda: app.run_status == "cancelled", "the run's cancelled outcome")
    assert coordinator_of(server.host).active_run(app.session_id) is None
