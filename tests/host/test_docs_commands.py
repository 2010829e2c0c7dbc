"""Every shell block of README.md, docs/ and examples/ runs as a reader would paste it (markers: docs_commands.py).

Each page runs as one shell session in its own network and PID namespace (bwrap), so the ports the
docs name (9000, 8099) are the page's own, and nothing it started outlives it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.agent.sandbox_support import require_bwrap
from tests.host.docs_commands import ROOT, doc_pages, failures, page_blocks, page_script

PAGE_TIMEOUT_S = 300.0  # a whole page, servers included, on a busy machine
VENV_BIN = str(Path(sys.executable).parent)
SUMMARY: dict[str, tuple[int, list[str]]] = {}  # page -> (blocks run, "where: kind (reason)" of those marked)
PAGES = [p for p in doc_pages() if page_blocks(p)[0]]


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """After the pages ran: how many blocks ran, and each one skipped with its reason."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not SUMMARY:
        return
    ran = sum(n for n, _ in SUMMARY.values())
    marked = [s for _, reasons in SUMMARY.values() for s in reasons]
    skipped = sum(" skip (" in s for s in marked)
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        reporter.write_line(f"\ndocs commands: {ran} blocks ran on {len(SUMMARY)} pages; {skipped} skipped, "
                            f"{len(marked) - skipped} run with any answer:")
        for line in marked:
            reporter.write_line(f"  {line}")


def test_docs_test_markers_name_a_known_kind_and_every_skip_says_why():
    problems = [p for page in doc_pages() for p in page_blocks(page)[1]]
    assert not problems, "\n".join(problems)


def test_a_skip_marker_without_a_reason_is_refused(tmp_path):
    page = tmp_path / "probe.md"
    page.write_text("<!-- docs-test: skip -->\n```bash\necho hi\n```\n\n<!-- docs-test: nope (x) -->\n"
                    "```sh\necho there\n```\n\n<!-- docs-test: skip (fine) -->\nprose, not a block\n")
    blocks, problems = page_blocks(page)
    assert len(blocks) == 2 and len(problems) == 3
    assert any("not just before a shell block" in p for p in problems)
    assert any("skip marker must say why" in p for p in problems)
    assert any("unknown docs-test marker 'nope'" in p for p in problems)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
async def test_the_shell_blocks_of_the_page_run_as_pasted(page, tmp_path):
    require_bwrap()
    blocks, problems = page_blocks(page)
    assert not problems, "\n".join(problems)
    runnable = [b for b in blocks if b.kind != "skip"]
    SUMMARY[str(page.relative_to(ROOT))] = (len(runnable), [f"{b.where}: {b.kind} ({b.reason})" for b in blocks
                                                            if b.kind in ("skip", "any-answer")])
    if not runnable:
        return  # every block is marked, with its reason (listed in the summary)
    output = await _run_session(page_script(blocks), tmp_path)
    print(output)  # shown with -rP, and on a failure
    found = failures(blocks, output)
    assert "__DOCS_BLOCK end" in output, f"the session stopped before its end:\n{output[-4000:]}"
    assert not found, "\n\n".join(found) + f"\n\n--- the whole session ---\n{output[-6000:]}"


async def _run_session(script: str, tmp_path: Path) -> str:
    """``bash`` on the script in a private /tmp, network and PID namespace; the cwd a fresh empty directory."""
    private = tmp_path / "tmp"
    for name in ("docs-work", "docs-home", "docs-config", "docs-state", "docs-cache", "docs-data"):
        (private / name).mkdir(parents=True)
    (private / "docs-work" / "examples").symlink_to(ROOT / "examples")  # paths the examples' READMEs name
    (private / "page.sh").write_text(script)
    env = {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/docs-home", "LANG": "C.UTF-8",
        "TERM": "dumb", "XDG_CONFIG_HOME": "/tmp/docs-config", "XDG_STATE_HOME": "/tmp/docs-state",
        "XDG_CACHE_HOME": "/tmp/docs-cache", "XDG_DATA_HOME": "/tmp/docs-data", "TMPDIR": "/tmp",
    }
    # A checkout under /tmp (CI clones into mktemp -d) would vanish behind the private /tmp: bind it back.
    keep = [arg for path in {ROOT.resolve(), Path(VENV_BIN).resolve().parent.parent}
            if path.is_relative_to("/tmp") for arg in ("--bind", str(path), str(path))]
    command = ["bwrap", "--dev-bind", "/", "/", "--bind", str(private), "/tmp", *keep, "--proc", "/proc",
               "--unshare-net", "--unshare-pid", "--die-with-parent", "--chdir", "/tmp/docs-work",
               "--", "bash", "/tmp/page.sh"]
    proc = await asyncio.create_subprocess_exec(*command, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PAGE_TIMEOUT_S)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)  # the namespace's processes die with bwrap
        out = (await proc.communicate())[0]
        pytest.fail(f"the page did not finish within {PAGE_TIMEOUT_S:.0f} s:\n{out.decode(errors='replace')[-6000:]}")
    return out.decode(errors="replace")
