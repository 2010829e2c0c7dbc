"""Calling a hook plugin by plugin: each implementation on its own, in a documented order.

pluggy calls every implementation of a hook in one go, so one that raises stops the rest and
a result cannot be told apart by plugin. The host's "register" hooks, ``bmo_startup``,
``bmo_shutdown`` and ``bmo_trace_record`` go through here instead, one plugin at a time.

Order (see ``docs/plugins.md``): *call order* is pluggy's own — ``tryfirst`` implementations,
then the most recently registered plugin first (entry points before the host's defaults), then
``trylast``. ``reverse=True`` walks the exact opposite, which is registration order.
:func:`in_reverse_of` orders a stop hook by another hook's call order (shutdown by startup).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pluggy import HookCaller, HookImpl, PluginManager

Kwargs = Mapping[str, object] | Callable[[str], Mapping[str, object]]
# on_error(plugin_name, exception); None lets the exception propagate.
OnError = Callable[[str, Exception], None] | None


async def maybe_await(value: Any) -> Any:
    """``await value`` when it is awaitable, else ``value`` (hooks may be sync or async)."""
    if inspect.isawaitable(value):
        return await value
    return value


def implementations(caller: HookCaller, *, reverse: bool = False) -> list[HookImpl]:
    """The hook's implementations in call order, or in its reverse; wrappers are left out."""
    impls = [impl for impl in caller.get_hookimpls() if not (impl.hookwrapper or impl.wrapper)]
    # pluggy keeps them as [trylast…, oldest…newest, tryfirst…] and calls from the end.
    return impls if reverse else impls[::-1]


def in_reverse_of(pm: PluginManager, caller: HookCaller, start: HookCaller) -> list[HookImpl]:
    """``caller``'s implementations in the exact reverse of ``start``'s call order.

    A plugin's place is set by its ``start`` implementation (``tryfirst``/``trylast`` included);
    one that does not implement ``start`` is placed as if it did, unmarked.
    """
    registered = {name: index for index, (name, _) in enumerate(pm.list_name_plugin())}
    tiers = {impl.plugin_name: 0 if impl.tryfirst else 2 if impl.trylast else 1 for impl in start.get_hookimpls()}

    def start_rank(impl: HookImpl) -> tuple[int, int]:
        return tiers.get(impl.plugin_name, 1), -registered.get(impl.plugin_name, -1)

    return sorted(implementations(caller), key=start_rank, reverse=True)


def _call_one(caller: HookCaller, impl: HookImpl, kwargs: Kwargs) -> Any:
    args = kwargs(impl.plugin_name) if callable(kwargs) else kwargs
    # pluggy's own single-implementation path (the one call_historic takes): it passes each
    # implementation only the arguments it names, and hook-call monitoring sees the call.
    results = caller._hookexec(caller.name, [impl], args, False)
    return results[0] if results else None


def call_each(caller: HookCaller, kwargs: Kwargs, *, reverse: bool = False, on_error: OnError = None) -> None:
    """Call every implementation on its own; ``kwargs`` may be a function of the plugin's name.

    With ``on_error``, an implementation that raises is reported to it and the others still run.
    """
    for impl in implementations(caller, reverse=reverse):
        try:
            _call_one(caller, impl, kwargs)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(impl.plugin_name, exc)


async def acall_each(
    caller: HookCaller, kwargs: Kwargs, *, reverse: bool = False, order: Sequence[HookImpl] | None = None,
    on_error: OnError = None,
) -> None:
    """:func:`call_each` for hooks whose implementations may be async: each is awaited before the next.

    ``order`` (e.g. from :func:`in_reverse_of`) replaces the call order or its reverse.
    """
    for impl in implementations(caller, reverse=reverse) if order is None else order:
        try:
            await maybe_await(_call_one(caller, impl, kwargs))
        except Exception as exc:
            if on_error is None:
                raise
            on_error(impl.plugin_name, exc)
