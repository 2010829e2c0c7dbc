"""The TUI driven with Textual's Pilot against a real in-process server and the fake upstream."""

from __future__ import annotations

import asyncio

import pytest

from bmo.testing.fake_upstream import reply, tool_call
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server
from bmo.tui.app import BmoApp
from bmo.tui.widgets import PermissionScreen

WAIT_S = 15


async def until(pilot, predicate, what: str):
    """Let the app run until ``predicate()`` holds; fail naming ``what`` after WAIT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}; transcript: {pilot.app.transcript()}")
        await pilot.pause(0.05)


@pytest.fixture
async def server(tmp_path, fake_upstream):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config = provider_toml(fake_upstream) + f'\n[agent]\nworkspace = "{workspace}"\n'
    running = await start_server(tmp_path / "data", config_toml=config)
    running.workspace = workspace
    yield running
    await running.stop()


async def type_line(pilot, text: str) -> None:
    pilot.app.query_one("#prompt").value = text
    await pilot.press("enter")


async def test_a_message_streams_the_answer_into_the_chat(server, fake_upstream):
    fake_upstream.script(reply("Hello from the model.", chunks=5))
    app = BmoApp(server.url, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.session_id is not None, "a session")
        await type_line(pilot, "hi there")
        await until(pilot, lambda: ("assistant", "Hello from the model.") in app.transcript(), "the answer")
        await until(pilot, lambda: app.run_status == "final_answer", "the run to finish")
    assert ("user", "hi there") in app.transcript()
    assert fake_upstream.chat_requests[-1].messages[-1] == {"role": "user", "content": "hi there"}


async def answer_write_challenge(server, fake_upstream, path: str, content: str, button: str, answer: str) -> BmoApp:
    """Script one write_file call, wait for the dialog, press ``button``, and let the run finish."""
    fake_upstream.script(
        reply(tool_calls=[tool_call("write_file", {"path": path, "content": content}, id="c1")]),
        reply(answer),
    )
    app = BmoApp(server.url, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.session_id is not None, "a session")
        await type_line(pilot, "write it")
        await until(pilot, lambda: isinstance(app.screen, PermissionScreen), "the permission dialog")
        assert app.screen.event["tool"] == "write_file"
        await pilot.click(button)
        await until(pilot, lambda: app.run_status == "final_answer", "the run to finish")
    return app


async def test_a_permission_challenge_is_answered_in_place(server, fake_upstream):
    app = await answer_write_challenge(server, fake_upstream, "out.txt", "42", "#allow_once", "Written.")
    assert (server.workspace / "out.txt").read_text() == "42"
    roles_texts = app.transcript()
    assert any(role == "tool" and text.startswith("✓ write_file") for role, text in roles_texts)
    assert ("assistant", "Written.") in roles_texts


async def test_denying_in_the_dialog_leaves_the_file_untouched(server, fake_upstream):
    await answer_write_challenge(server, fake_upstream, "no.txt", "x", "#deny", "Understood.")
    assert not (server.workspace / "no.txt").exists()
    assert "denied" in fake_upstream.chat_requests[-1].messages[-1]["content"].lower()


async def test_sidebar_shows_plugin_indicators_and_slash_commands_render_server_side(server):
    app = BmoApp(server.url, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "OpenAI compat: disabled" in str(app.query_one("#indicators").render()),
                    "the compat sidebar indicator")
        await type_line(pilot, "/openai-compat")
        await until(pilot, lambda: any(r == "notice" and "tool_policy" in t for r, t in app.transcript()),
                    "the /openai-compat report")
        report = [t for r, t in app.transcript() if r == "notice" and "tool_policy" in t][0]
        assert report == await server.host.render_slash("/openai-compat", width=max(40, app.size.width - 40))


async def test_a_wrong_token_is_shown_not_raised(server):
    app = BmoApp(server.url, "wrong-token")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: any(r == "error" for r, _ in app.transcript()), "an error line")
    errors = [t for r, t in app.transcript() if r == "error"]
    assert "401" in errors[0] and "bearer token" in errors[0].lower()


async def test_a_wrong_token_says_so_in_the_sidebar_and_how_to_pass_one(server):
    app = BmoApp(server.url, "wrong-token")
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: "token wrong or missing" in str(app.query_one("#indicators").render()),
                    "the sidebar's token hint")
        assert "--auth-token" in str(app.query_one("#indicators").render())


async def test_an_unknown_command_lists_the_tuis_own_commands_too(server):
    app = BmoApp(server.url, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await type_line(pilot, "/nope")
        await until(pilot, lambda: any("Unknown command /nope" in t for _, t in app.transcript()), "the unknown reply")
    [text] = [t for _, t in app.transcript() if "Unknown command /nope" in t]
    assert "/new" in text and "/quit" in text and "/help" in text


def test_a_decision_by_a_nameless_user_reads_user():
    from bmo.tui.app import decider

    assert (decider("user:"), decider("user:alice"), decider("policy")) == ("user", "user:alice", "policy")
