"""Check a JSON value against a Kubernetes API model, as the OpenAPI spec defines it.

The reference is ``kubernetes_asyncio.client.models``: its classes are generated from the
Kubernetes OpenAPI spec, so each has ``openapi_types`` (attribute -> type name) and
``attribute_map`` (attribute -> JSON key), and its setters refuse ``None`` for the fields the spec
marks required. :func:`shape_problems` walks a value against a model name recursively and returns
every problem found (an empty list: the value has the model's shape).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from types import SimpleNamespace

from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client import models as k8s_models

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(([^,]+), (.+)\)$")
# OpenAPI primitive type name -> the JSON types it admits (bool is not an int in JSON).
_PRIMITIVES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "date": (str,)}


def shape_problems(value: object, type_name: str, where: str = "$") -> list[str]:
    """Every way ``value`` differs from ``type_name`` (a model like ``V1Pod`` or ``list[V1Pod]``)."""
    if value is None:
        return []  # null is how the API sends an unset optional field
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            return [f"{where}: expected a JSON array ({type_name}), got {type(value).__name__}"]
        return [p for i, v in enumerate(value) for p in shape_problems(v, match[1], f"{where}[{i}]")]
    if match := _DICT.match(type_name):
        if not isinstance(value, dict):
            return [f"{where}: expected a JSON object ({type_name}), got {type(value).__name__}"]
        return [p for k, v in value.items() for p in shape_problems(v, match[2], f"{where}.{k}")]
    if type_name == "object":
        return []  # IntOrString, RawExtension, free-form: any JSON value
    if type_name == "datetime":
        return _datetime_problems(value, where)
    if type_name in _PRIMITIVES:
        wanted = _PRIMITIVES[type_name]
        if isinstance(value, bool) and bool not in wanted or not isinstance(value, wanted):
            return [f"{where}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    return _model_problems(value, type_name, where)


def _model_problems(value: object, model: str, where: str) -> list[str]:
    cls = getattr(k8s_models, model, None)
    if cls is None:
        return [f"{where}: the reference has no model {model!r}"]
    if not isinstance(value, dict):
        return [f"{where}: expected a JSON object ({model}), got {type(value).__name__}"]
    by_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    problems = [f"{where}: {model} has no field {key!r}" for key in value if key not in by_key]
    problems += [f"{where}: {model} requires {cls.attribute_map[attr]!r}" for attr in required_fields(model)
                 if value.get(cls.attribute_map[attr]) is None]
    for key, item in value.items():
        if key in by_key:
            problems += shape_problems(item, cls.openapi_types[by_key[key]], f"{where}.{key}")
    return problems


def _datetime_problems(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return []
        except ValueError:
            pass
    return [f"{where}: expected an RFC 3339 date-time, got {value!r}"]


@cache
def required_fields(model: str) -> tuple[str, ...]:
    """The attributes the spec marks required: the generated setters refuse ``None`` for exactly those."""
    cls = getattr(k8s_models, model)
    probe = cls.__new__(cls)
    config = Configuration()
    config.client_side_validation = True
    probe.local_vars_configuration = config
    required = []
    for attr in cls.openapi_types:
        try:
            setattr(probe, attr, None)
        except ValueError as exc:
            if "must not be `None`" in str(exc):
                required.append(attr)
    return tuple(required)


def validating_client() -> ApiClient:
    """An ``ApiClient`` whose models refuse a missing required field (close it: ``async with``)."""
    config = Configuration()
    config.client_side_validation = True
    return ApiClient(configuration=config)


def deserialized(client: ApiClient, body: str | bytes, model: str):
    """``body`` read by the library's own path, ``ApiClient.deserialize``, into ``model``."""
    return client.deserialize(SimpleNamespace(data=body), model)
