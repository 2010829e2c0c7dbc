"""One reading of msgspec's validation errors, shared by the config loader and the HTTP bodies."""

from __future__ import annotations

import msgspec
import pytest

from bmo.field_errors import FieldError, field_error, field_parts


class Part(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: str
    size: int = 0


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    model: str
    parts: list[Part] = []


def _error(raw: object) -> FieldError:
    with pytest.raises(msgspec.ValidationError) as exc:
        msgspec.convert(raw, Body)
    return field_error(exc.value)


def test_a_wrong_type_names_its_nested_path_and_keeps_msgspecs_text():
    assert _error({"model": "m", "parts": [{"type": "a"}, {"type": "b", "size": "big"}]}) == FieldError(
        "parts[1].size", "Expected `int`, got `str`", "invalid")


def test_an_unknown_field_is_named_below_its_parent():
    error = _error({"model": "m", "parts": [{"type": "a", "colour": "red"}]})
    assert (error.param, error.problem) == ("parts[0].colour", "unknown")
    assert error.message == "Object contains unknown field `colour`"


def test_a_missing_field_at_the_top_is_named_alone():
    assert _error({}) == FieldError("model", "Object missing required field `model`", "missing")


def test_an_error_about_the_body_itself_has_no_param():
    assert _error([1, 2]) == FieldError(None, "Expected `object`, got `array`", "invalid")


def test_field_parts_splits_a_path_for_walking_the_raw_value():
    assert field_parts("parts[1].size") == ["parts", "1", "size"]
    assert field_parts(None) == []
