"""The shell blocks of the docs, and a page's blocks as one shell session a reader would paste them into.

A block is a fenced ```bash, ```sh, ```shell or ```console block (console: only its ``$ `` lines).
An HTML comment just before it (blank lines and ``<!-- golden:... -->`` between are allowed) may say
how the docs test treats it:

- ``<!-- docs-test: skip (why) -->``: not run; the reason is listed in the test's summary.
- ``<!-- docs-test: any-answer (why) -->``: run, but an error answer is not a failure (it depends on
  the model, and the fake one only echoes); a failed command or a traceback still is. Listed too.
- ``<!-- docs-test: with-model -->``: first start the fake model on 127.0.0.1:8099 (``fake-model``,
  ``other-model``), write ``./bmo.toml`` (compat on, provider ``fake``) and export ``BMO_AUTH_TOKEN``.
- ``<!-- docs-test: with-server -->``: the same, plus ``bmo serve --addr 127.0.0.1:9000`` running.

What a reader does by hand, the session does too: a ``bmo serve`` without ``&`` is left running "in
another terminal" (started in the background, waited for, stopped when the page starts another),
and a ``bmo logs ... --follow`` is stopped with Ctrl-C (SIGINT) after a few seconds.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = ("bash", "sh", "shell", "console")
KINDS = ("skip", "any-answer", "with-model", "with-server")
NEEDS_REASON = ("skip", "any-answer")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->\s*$")
ANY_MARKER = re.compile(r"^\s*<!--\s*docs-test\b")  # a line of its own; a mention in `code` is prose
HTTP_STATUS = re.compile(r"^HTTP (?P<status>\d{3})\b")
FOLLOW_S = 3  # how long a `bmo logs --follow` runs before its Ctrl-C


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the checkout
    line: int  # the opening fence's line, 1-based
    text: str  # the commands, as pasted
    kind: str = ""  # "", or one of KINDS
    reason: str = ""
    shows_error: bool = False  # the doc answers it with an ```http block of a 4xx/5xx status

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def doc_pages() -> list[Path]:
    """README.md, docs/**/*.md and examples/**/README.md (not inside a venv or node_modules an example made)."""
    return [ROOT / "README.md", *_walk(ROOT / "docs", lambda name: name.endswith(".md")),
            *_walk(ROOT / "examples", lambda name: name == "README.md")]


def _walk(top: Path, wanted) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
        found += [Path(folder) / f for f in files if wanted(f)]
    return sorted(found)


def page_blocks(path: Path) -> tuple[list[Block], list[str]]:
    """The page's shell blocks in order, and the marker mistakes found on it."""
    lines = path.read_text().splitlines()
    page = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    blocks: list[Block] = []
    problems: list[str] = []
    used_markers: set[int] = set()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence or not fence.group("lang"):
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        if fence.group("lang") in SHELL_LANGS:
            body = [line[len(fence.group("indent")):] for line in lines[i + 1:end]]
            text = _console_commands(body) if fence.group("lang") == "console" else "\n".join(body)
            kind, reason, at = _marker_before(lines, i)
            if at is not None:
                used_markers.add(at)
                if kind not in KINDS:
                    problems.append(f"{page}:{at + 1}: unknown docs-test marker {kind!r}; "
                                    f"use one of {', '.join(KINDS)}")
                elif kind in NEEDS_REASON and not reason.strip():
                    problems.append(f"{page}:{at + 1}: a docs-test {kind} marker must say why: "
                                    f"<!-- docs-test: {kind} (needs a real OpenAI key) -->")
            blocks.append(Block(page, i + 1, text, kind, reason.strip(), _shows_error(lines, end)))
        i = end + 1
    for n, line in enumerate(lines):
        if ANY_MARKER.search(line) and n not in used_markers:
            problems.append(f"{page}:{n + 1}: a docs-test marker that is not just before a shell block: {line.strip()}")
    return blocks, problems


def _console_commands(body: list[str]) -> str:
    """A console block's commands: each ``$ `` line and the lines it continues with a backslash."""
    out: list[str] = []
    continuing = False
    for line in body:
        if line.startswith("$ ") or continuing:
            out.append(line[2:] if line.startswith("$ ") and not continuing else line)
            continuing = line.endswith("\\")
    return "\n".join(out)


def _marker_before(lines: list[str], fence: int) -> tuple[str, str, int | None]:
    j = fence - 1
    while j >= 0 and (not lines[j].strip() or lines[j].strip().startswith("<!-- golden:")):
        j -= 1
    found = MARKER.match(lines[j]) if j >= 0 else None
    if found:
        return found.group("kind"), found.group("reason") or "", j
    return "", "", None


def _shows_error(lines: list[str], end: int) -> bool:
    """The doc's answer to the block is the ```http block after it: does it show an error status?"""
    j = end + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j + 1 < len(lines) and lines[j].strip() == "```http":
        status = HTTP_STATUS.match(lines[j + 1].strip())
        return bool(status and int(status.group("status")) >= 400)
    return False


# --- one page as one shell session ---------------------------------------------------------------

PRELUDE = r"""
set -E -m  # job control: each background job its own process group, stopped as one (and Ctrl-C reaches it)
__docs_server=
trap 'printf "\n__DOCS_FAIL %s: exit %s from: %s\n" "${__docs_block}" "$?" "${BASH_COMMAND}"' ERR
__docs_wait() {  # URL [PID]: until something answers at URL (or PID died)
  for __docs_i in $(seq 1 900); do
    if [ -n "$2" ] && ! kill -0 "$2" 2>/dev/null; then break; fi
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.2
  done
  printf '\n__DOCS_FAIL %s: nothing answered at %s\n' "${__docs_block}" "$1"
}
__docs_stop_server() {
  if [ -n "$__docs_server" ]; then kill -- "-$__docs_server" 2>/dev/null || true; wait "$__docs_server" || true; fi
  __docs_server=
}
"""

WITH_MODEL = r"""
python -m bmo.testing.fake_upstream --port 8099 --model fake-model --model other-model &
__docs_wait http://127.0.0.1:8099/v1/models
export BMO_AUTH_TOKEN=docs-test-token
cat > bmo.toml <<'TOML'
[options.openai_compat]
enabled = true

[providers.fake]
kind = "openai"
base_url = "http://127.0.0.1:8099/v1"

[agent]
default_model = "fake/fake-model"
TOML
"""

WITH_SERVER = WITH_MODEL + r"""
bmo serve --addr 127.0.0.1:9000 &
__docs_server=$!
__docs_wait http://127.0.0.1:9000/healthz "$__docs_server"
"""

SERVE = re.compile(r"^(?:\w+=\S*\s+)*(?:\S*/)?bmo\s+serve\b")
FOLLOW = re.compile(r"^bmo\s+logs\b.*\s--follow\b")


def page_script(blocks: list[Block]) -> str:
    """The page's runnable blocks in order, in one shell session, each announced by a ``__DOCS_BLOCK`` line."""
    parts = [PRELUDE]
    for block in blocks:
        if block.kind == "skip":
            continue
        # The newline first: the previous block's last output (curl's JSON) may not end with one.
        where = shlex.quote(block.where)
        parts.append(f"__docs_block={where}\nprintf '\\n__DOCS_BLOCK %s\\n' {where}")
        if block.kind == "with-model":
            parts.append(WITH_MODEL)
        elif block.kind == "with-server":
            parts.append(WITH_SERVER)
        parts.append(_as_a_reader_runs_it(block.text))
    parts.append("__docs_block=end\nprintf '\\n__DOCS_BLOCK end\\n'\n__docs_stop_server")
    return "\n".join(parts) + "\n"


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        current = f"{current}\n{line}" if current else line
        if not line.endswith("\\"):
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out


def _as_a_reader_runs_it(text: str) -> str:
    out: list[str] = []
    heredoc: str | None = None
    for line in _logical_lines(text):
        if heredoc is not None:  # heredoc bodies pass as they are
            out.append(line)
            if line.strip() == heredoc:
                heredoc = None
            continue
        opened = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", line)
        if opened:
            heredoc = opened.group(1)
        command = _without_comment(line).strip()
        if SERVE.match(command) and not command.endswith("&"):
            port = re.search(r"--addr\s+\S*?:(\d+)", command)
            out.append(f"__docs_stop_server\n{{ trap - ERR; {line}\n}} &\n__docs_server=$!\n"
                       f"__docs_wait http://127.0.0.1:{port.group(1) if port else 9000}/healthz \"$__docs_server\"")
        elif FOLLOW.match(command):
            out.append(f"timeout -s INT {FOLLOW_S} {command} || [ $? -eq 124 ]")
        else:
            out.append(line)
    return "\n".join(out)


def _without_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (outside quotes)."""
    quote = ""
    for n, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (n == 0 or line[n - 1].isspace()):
            return line[:n]
    return line


# --- reading what the session printed ------------------------------------------------------------

ERROR_ENVELOPE = re.compile(r"\{\s*\"error\"\s*:\s*\{")


def block_outputs(output: str) -> dict[str, str]:
    """The session's output cut at its ``__DOCS_BLOCK`` lines, by block."""
    sections: dict[str, list[str]] = {"prelude": []}
    current = "prelude"
    for line in output.splitlines():
        if line.startswith("__DOCS_BLOCK "):
            current = line.removeprefix("__DOCS_BLOCK ").strip()
            sections.setdefault(current, [])
            continue
        sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def failures(blocks: list[Block], output: str) -> list[str]:
    """What went wrong, block by block: a failed command, a traceback, an error answer the doc does not show."""
    found: list[str] = []
    by_block = {b.where: b for b in blocks}
    for where, text in block_outputs(output).items():
        for line in text.splitlines():
            if line.startswith("__DOCS_FAIL "):
                found.append(line.removeprefix("__DOCS_FAIL "))
        if "Traceback (most recent call last)" in text:
            found.append(f"{where}: a traceback:\n{_excerpt(text, 'Traceback (most recent call last)')}")
        block = by_block.get(where)
        if block is not None and not block.shows_error and block.kind != "any-answer" and ERROR_ENVELOPE.search(text):
            found.append(f"{where}: an error answer where the doc shows success:\n"
                         f"{_excerpt(text, ERROR_ENVELOPE.search(text).group(0))}")
    return found


def _excerpt(text: str, needle: str, around: int = 1200) -> str:
    at = text.find(needle)
    return text[max(0, at - 200): at + around]
