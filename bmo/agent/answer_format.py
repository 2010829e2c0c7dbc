"""A run's answer format: the final answer held to JSON, or to a JSON schema.

Reusable by every surface that offers structured output (chat ``response_format``, the
Responses API's ``text.format``): build an :class:`AnswerFormat` with :func:`json_object` or
:func:`json_schema` (which refuses an unusable schema with :class:`FormatError`), hand it to
``Coordinator.start_run(answer_format=...)``, and the loop does the rest:

- every step's system prompt says what the final answer must be (nothing is persisted);
- a step offered no tools sends the format upstream as ``response_format``; steps with tools
  do not (many upstreams refuse tools and a response format together, or let the grammar
  forbid tool calls), their final text is checked here instead;
- a final text that does not conform gets one repair step (the validation error, the format
  upstream, no tools); if that fails too the run ends with outcome ``invalid_output``.

``jsonschema`` validates: the schema's own ``$schema`` picks the draft (2020-12 when absent).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import msgspec
from jsonschema.exceptions import SchemaError

# The check result's error text is bounded: it goes into a prompt and into the ledger.
ERROR_LIMIT = 600


class FormatError(ValueError):
    """The format itself is unusable (bad schema, missing name); say so to the client as a 400."""


class AnswerFormat(msgspec.Struct, frozen=True, kw_only=True):
    """What the final answer must be: any JSON object (``json_object``) or an instance of ``schema``."""

    type: Literal["json_object", "json_schema"]
    name: str = "answer"
    schema: dict | None = None
    strict: bool | None = None
    description: str | None = None

    def upstream(self) -> dict:
        """The OpenAI chat ``response_format`` that asks an upstream for this format."""
        if self.type == "json_object":
            return {"type": "json_object"}
        spec: dict[str, Any] = {"name": self.name, "schema": self.schema or {}}
        if self.strict is not None:
            spec["strict"] = self.strict
        if self.description:
            spec["description"] = self.description
        return {"type": "json_schema", "json_schema": spec}

    def describe(self) -> dict:
        """A short form for ledgers and records (no schema body)."""
        return {"type": self.type, **({"name": self.name, "strict": bool(self.strict)} if self.type == "json_schema" else {})}

    def instructions(self) -> str:
        """The system-prompt line that tells the model what its final answer must be."""
        if self.type == "json_object":
            return ("Your final answer (after any tool calls) must be one JSON object and nothing else: "
                    "no prose, no code fences.")
        return ("Your final answer (after any tool calls) must be one JSON value and nothing else (no prose, no "
                f"code fences) that conforms to this JSON schema named {self.name!r}:\n"
                + json.dumps(self.schema or {}, separators=(",", ":")))

    @staticmethod
    def extract(text: str) -> str:
        """The answer without surrounding whitespace or a Markdown code fence some models add."""
        text = text.strip()
        if text.startswith("```") and text.endswith("```") and len(text) >= 6:
            text = text[3:-3]
            text = text.split("\n", 1)[1] if "\n" in text and not text.lstrip().startswith(("{", "[")) else text
            text = text.strip()
        return text

    def check(self, text: str) -> str | None:
        """None when ``text`` conforms; else what is wrong with it, in one bounded sentence."""
        try:
            value = json.loads(text)
        except ValueError as exc:
            return _bounded(f"the answer is not valid JSON ({exc})")
        if self.type == "json_object":
            return None if isinstance(value, dict) else _bounded(
                f"the answer is JSON but not an object (got {type(value).__name__})")
        validator = jsonschema.validators.validator_for(self.schema or {})(self.schema or {})
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return _bounded(f"at {where}: {error.message}")

    def repair_prompt(self, error: str) -> str:
        """The user message of the repair step."""
        return (f"Your answer does not meet the required format: {error}. Reply again with only the corrected "
                "JSON, nothing else.\n" + self.instructions())


def json_object() -> AnswerFormat:
    return AnswerFormat(type="json_object")


def json_schema(name: str, schema: Any, *, strict: bool | None = None, description: str | None = None) -> AnswerFormat:
    """A schema format; :class:`FormatError` when the name or the schema cannot be used."""
    if not isinstance(name, str) or not name.strip():
        raise FormatError("the format needs a 'name' (letters, digits, _ and -), e.g. \"answer\"")
    if not isinstance(schema, dict):
        raise FormatError("the 'schema' must be a JSON Schema object, e.g. {\"type\": \"object\", \"properties\": {}}")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise FormatError(f"the 'schema' is not a valid JSON Schema: {_bounded(exc.message)}") from None
    return AnswerFormat(type="json_schema", name=name, schema=schema, strict=strict, description=description)


def _bounded(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"
