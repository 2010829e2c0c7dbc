"""Feeding an event source to a writer in bursts, woken by an event, a deadline or the client leaving."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterable, Callable

from bmo.streaming.disconnect import ClientGone, DisconnectWatch


class _End:
    def __repr__(self) -> str:
        return "END"


END = _End()  # the last item of every feed: the source is exhausted (or failed, its exception just before)


# listen(on_item, on_end) -> stop: a source that calls back instead of being iterated.
Listen = Callable[[Callable[[object], None], Callable[[], None]], Callable[[], None]]


class EventFeed:
    """Copies an async iterable's items into a buffer that :meth:`take` drains in bursts.

    The consumer waits on one future, resolved by the next item, by the client leaving (the
    :class:`DisconnectWatch`) or by its deadline; one timer per feed serves every deadline.
    So an item costs no task and no timer, and an item already buffered costs no wait at all.
    A source that raises delivers its exception as an item; ``END`` always comes last.
    """

    def __init__(self, source: AsyncIterable | None, watch: DisconnectWatch | None = None, *,
                 listen: Listen | None = None):
        self._loop = asyncio.get_running_loop()
        self._items: deque = deque()
        self._waiter: asyncio.Future | None = None
        self._deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._watch = watch
        self.waits = 0  # how often take() had to wait (each wait is one future)
        if watch is not None:
            watch.on_lost(self._wake)
        self._task: asyncio.Task | None = None
        self._stop: Callable[[], None] | None = None
        if listen is not None:  # the source calls us: no copying task, no generator step per item
            self._stop = listen(self._push, self._end)
        else:
            self._task = self._loop.create_task(self._pump(source))

    @classmethod
    def listening(cls, listen: Listen, watch: DisconnectWatch | None = None) -> "EventFeed":
        """A feed of a source that calls back (``listen(on_item, on_end)`` returns how to stop), e.g. ``Run.listen``."""
        return cls(None, watch, listen=listen)

    def _push(self, item) -> None:
        self._items.append(item)
        self._wake()

    def _end(self) -> None:
        self._items.append(END)
        self._wake()

    async def _pump(self, source: AsyncIterable) -> None:
        try:
            async for item in source:
                self._items.append(item)
                self._wake()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer as an item
            self._items.append(exc)
        finally:
            self._items.append(END)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self, limit: int, deadline: float = math.inf) -> list:
        """Up to ``limit`` buffered items, waiting for the first one.

        ``[]`` once the loop time reaches ``deadline`` with nothing buffered (time for a
        keep-alive); :class:`ClientGone` as soon as the watch has seen the client leave.
        """
        if self._watch is not None and self._watch.lost:
            raise ClientGone("client disconnected")
        items = self._items
        if not items:
            if deadline <= self._loop.time():
                return []
            self._arm(deadline)
            self.waits += 1
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if self._watch is not None and self._watch.lost:
                raise ClientGone("client disconnected")
            if not items:
                return []
        if len(items) == 1:
            return [items.popleft()]
        return [items.popleft() for _ in range(min(limit, len(items)))]

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if deadline >= self._timer_at:
            return  # the pending timer fires first and re-arms itself for the later deadline
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        fired_at, self._timer, self._timer_at = self._timer_at, None, math.inf
        if self._deadline <= fired_at:
            self._wake()
        elif self._waiter is not None and self._deadline < math.inf:
            self._arm(self._deadline)

    def close(self) -> None:
        """Stop copying from the source; nothing of the feed runs after this."""
        if self._task is not None:
            self._task.cancel()
        if self._stop is not None:
            self._stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    async def aclose(self) -> None:
        """:meth:`close`, then wait until the copying task has stopped."""
        self.close()
        if self._task is None:
            return
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise  # our own caller is being cancelled, not just the copying task
