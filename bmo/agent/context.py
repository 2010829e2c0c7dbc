"""Keeping each model call under the model's context window: ``[agent.context]``.

Tokens are estimated from the encoded size of the messages (about four bytes a token) and
corrected by what the upstream reported (``usage.prompt_tokens`` of the run's last call).
tiktoken is not used: its encodings are downloaded at first use, and BMO runs offline.
Over budget, BMO first shortens older tool results, then replaces the turns before the
current one by one summary (a model call of kind ``compaction``); the system prompt and the
current turn are never dropped. What is stored in the session is never changed.

A durable session keeps its summary (``bmo.agent.summaries``): a later turn reuses it for the
turns it covers, keeps the newer ones as they are while they fit, and otherwise summarises only
the newer overflow, given the summary so far. Each over-budget turn so costs at most one call
over messages not summarised before, and often none.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import msgspec

from bmo.agent.messages import ChatMessage, text_of
from bmo.agent.summaries import Summary, SummaryStore, digest
from bmo.store import StoreError

_ENCODE = msgspec.json.Encoder().encode
SHORTENED = "\n[... {cut} characters of this tool result left out to fit the context window]"
SUMMARY_PROMPT = ("Summarise the conversation below for your own later use: the user's goals, decisions, facts "
                  "and results found, and open questions. Be brief and concrete; no preamble.")


class ContextOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[agent.context]``: each model call's budget."""

    enabled: bool = True
    context_window: int = 32768  # tokens, for a model not in ``models``
    models: dict[str, int] = {}  # "NAME/model" (or a glob) -> its context window in tokens
    reserve_tokens: int = 4096  # kept free for the answer
    tool_result_chars: int = 2000  # an older tool result is cut to this many characters first
    summarise: bool = True  # then one model call summarises the turns before the current one


def window_of(options: ContextOptions, model: str) -> int:
    for pattern, window in options.models.items():
        if model == pattern or fnmatchcase(model, pattern):
            return window
    return options.context_window


def estimate(messages: list[ChatMessage]) -> int:
    """Tokens of ``messages`` by their encoded size: about 4 bytes a token, 4 more a message."""
    return sum(len(_ENCODE(m)) // 4 + 4 for m in messages)


def current_turn_start(messages: list[ChatMessage]) -> int:
    """Index of the last user message: it and everything after it is the current turn."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i
    return len(messages)


def leading_system(messages: list[ChatMessage]) -> int:
    n = 0
    while n < len(messages) and messages[n].role == "system":
        n += 1
    return n


def shorten_tool_results(messages: list[ChatMessage], limit: int, upto: int) -> tuple[list[ChatMessage], int]:
    """Older tool results (before index ``upto``) cut to ``limit`` characters; (messages, how many were cut)."""
    out, cut = list(messages), 0
    for i in range(upto):
        m = out[i]
        if m.role == "tool" and isinstance(m.content, str) and len(m.content) > limit:
            out[i] = msgspec.structs.replace(
                m, content=m.content[:limit] + SHORTENED.format(cut=len(m.content) - limit))
            cut += 1
    return out, cut


def transcript_for_summary(messages: list[ChatMessage]) -> str:
    lines = []
    for m in messages:
        if m.tool_calls:
            lines.append(f"{m.role} called: " + ", ".join(f"{c.function.name}({c.function.arguments[:200]})"
                                                          for c in m.tool_calls))
        text = text_of(m.content)
        if text:
            lines.append(f"{m.role}: {text[:4000]}")
    return "\n".join(lines)


def summary_messages(older: list[ChatMessage], earlier: str = "") -> list[ChatMessage]:
    """The one call that summarises ``older``; ``earlier`` is the summary of what came before it, if any."""
    text = transcript_for_summary(older)
    if earlier:
        text = f"Summary of what came before:\n{earlier}\n\nWhat followed:\n{text}"
    return [ChatMessage(role="system", content=SUMMARY_PROMPT), ChatMessage(role="user", content=text)]


def with_summary(messages: list[ChatMessage], summary: str, kept: list[ChatMessage] = ()) -> list[ChatMessage]:
    """System prompt, the summary in place of the older turns (then ``kept`` of them), the current turn unchanged."""
    head, start = leading_system(messages), current_turn_start(messages)
    note = ChatMessage(role="user", content=f"(Summary of the earlier conversation, shortened to fit: {summary})")
    ack = ChatMessage(role="assistant", content="Understood.")
    return messages[:head] + [note, ack] + list(kept) + messages[start:]


class ContextFitter:
    """One run's budget keeper: fits each call's messages, learning the upstream's real count as it goes."""

    def __init__(self, options: ContextOptions | None, model: str, record, run_id: str,
                 summaries: SummaryStore | None = None):
        self.options = options
        self.budget = (window_of(options, model) - options.reserve_tokens) if options is not None else 0
        self.record = record
        self.run_id = run_id
        self.ratio = 1.0  # upstream tokens per estimated token, from the last call
        self.summaries = summaries  # the session's stored summary; None for an in-memory session
        self.summary: Summary | None = None  # the newest this run made or loaded
        self.loaded = summaries is None
        # The last estimate, by the lists' identity: a step's fit and learn look at the same lists, and a
        # long history costs one encoding per step instead of two.
        self._last: tuple[list, int, list, int, int] | None = None

    def _estimate(self, messages: list[ChatMessage], tools: list[dict]) -> int:
        last, n_tools = self._last, len(tools or ())
        if (last is not None and last[0] is messages and last[1] == len(messages) and last[2] is tools
                and last[3] == n_tools):
            return last[4]
        estimated = estimate(messages) + (len(_ENCODE(tools)) // 4 if tools else 0)
        self._last = (messages, len(messages), tools, n_tools, estimated)
        return estimated

    def tokens(self, messages: list[ChatMessage], tools: list[dict]) -> int:
        return int(self._estimate(messages, tools) * self.ratio)

    def learn(self, messages: list[ChatMessage], tools: list[dict], prompt_tokens: int) -> None:
        estimated = self._estimate(messages, tools)
        if prompt_tokens > 0 and estimated > 0:
            self.ratio = max(1.0, prompt_tokens / estimated)  # never trust an estimate below the real count

    async def fit(self, messages: list[ChatMessage], tools: list[dict], summarise) -> list[ChatMessage]:
        """``messages`` within the budget, or as close as the system prompt and the current turn allow."""
        opts = self.options
        if opts is None or not opts.enabled or self.tokens(messages, tools) <= self.budget:
            return messages
        before = self.tokens(messages, tools)
        start = current_turn_start(messages)
        fitted, cut = shorten_tool_results(messages, opts.tool_result_chars, start)
        summarised, reused = False, False
        if self.tokens(fitted, tools) > self.budget and opts.summarise and start > leading_system(fitted):
            fitted, reused = await self._summarised(messages, fitted, tools, summarise)
            summarised = True
        if self.tokens(fitted, tools) > self.budget:  # the current turn alone is too big: cut its tool results too
            fitted, more = shorten_tool_results(fitted, opts.tool_result_chars, len(fitted) - 1)
            cut += more
        self.record("agent.context.compacted", "info", run_id=self.run_id, budget=self.budget,
                    tokens_before=before, tokens_after=self.tokens(fitted, tools), tool_results_shortened=cut,
                    summarised=summarised, summary_reused=reused)
        return fitted

    async def _prior(self, messages: list[ChatMessage], head: int, older: int) -> Summary | None:
        """The newest summary (this run's, else the session's) if the history still starts with what it covers."""
        if not self.loaded:
            self.loaded = True
            self.summary = await self.summaries.load()
        prior = self.summary
        # A fork or an edit inside the covered range changes its digest: that summary no longer applies.
        if prior is None or prior.covers > older or digest(messages[head:head + prior.covers]) != prior.digest:
            return None
        return prior

    async def _summarised(self, messages, fitted, tools, summarise) -> tuple[list[ChatMessage], bool]:
        """``fitted`` with the older turns summarised, and whether no new summary call was needed."""
        head, start = leading_system(fitted), current_turn_start(fitted)
        older = fitted[head:start]
        prior = await self._prior(messages, head, len(older))
        if prior is not None and prior.covers == len(older):
            return with_summary(fitted, prior.text), True
        if prior is not None:  # the turns after it stay as they are while they fit
            kept = with_summary(fitted, prior.text, older[prior.covers:])
            if self.tokens(kept, tools) <= self.budget:
                return kept, True
        newer, earlier = (older[prior.covers:], prior.text) if prior is not None else (older, "")
        text = await summarise(summary_messages(newer, earlier))
        self.summary = Summary(len(older), digest(messages[head:start]), text)
        if self.summaries is not None:
            try:
                await self.summaries.save(self.summary)
            except StoreError as exc:  # the turn is still answered; the next one summarises again
                self.record("agent.context.summary_not_kept", "warn", run_id=self.run_id, error=str(exc))
        return with_summary(fitted, text), False
