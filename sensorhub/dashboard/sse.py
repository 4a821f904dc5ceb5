"""Server-sent events: the wire format and one bounded queue per connected browser.

Policy of a client's queue (:data:`CLIENT_QUEUE_MAX` events): when it is full, the **oldest angles
event** is dropped (counted in :attr:`SseClient.dropped`): angles are a live view and the next one
replaces them. When it is full of events that must not be lost (posture, alerts, sensors ...),
the browser is too slow to keep up: the client is closed, and its ``EventSource`` reconnects and
starts again from a fresh snapshot, which is exact, instead of from a queue with holes.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from typing import Final

from sensorhub.model import JsonValue

__all__ = ["CLIENT_QUEUE_MAX", "KEEPALIVE_FRAME", "Broadcaster", "SseClient", "sse_frame"]

#: Events waiting for one browser at most (25 s of one wearer's angles at 10 Hz).
CLIENT_QUEUE_MAX: Final = 256
#: A comment line: keeps proxies and the browser from timing the idle stream out.
KEEPALIVE_FRAME: Final = b": keep-alive\n\n"


def sse_frame(event: str, data: Mapping[str, JsonValue] | list[JsonValue]) -> bytes:
    """One event in the ``text/event-stream`` format (WHATWG HTML §9.2): a name and one JSON data line."""
    if not event or any(c in event for c in "\r\n:"):
        raise ValueError(f"bad event name {event!r}")
    # json.dumps escapes newlines inside strings, so the data is one line.
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"event: {event}\ndata: {body}\n\n".encode()


class SseClient:
    """The queue of one connected browser.

    Args:
        wearer: only this wearer's events (a wearer page), or None for all (the overview).
        max_events: bound of the queue.
    """

    def __init__(self, wearer: str | None, *, max_events: int = CLIENT_QUEUE_MAX) -> None:
        self.wearer = wearer
        self._max = max_events
        self._queue: deque[tuple[bool, bytes]] = deque()  # (droppable, frame)
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False
        self.overflowed = False

    def __repr__(self) -> str:
        return f"SseClient(wearer={self.wearer!r}, queued={len(self._queue)}, dropped={self.dropped})"

    def wants(self, wearer: str | None) -> bool:
        """Whether an event of ``wearer`` (None = about every wearer, e.g. the broker) is for this client."""
        return self.wearer is None or wearer is None or wearer == self.wearer

    def offer(self, frame: bytes, *, droppable: bool) -> None:
        """Queue a frame; never blocks (see the module's overflow policy)."""
        if self.closed:
            return
        if len(self._queue) >= self._max:
            for index, (can_drop, _) in enumerate(self._queue):
                if can_drop:
                    del self._queue[index]
                    self.dropped += 1
                    break
            else:
                self.overflowed = True
                self.close()
                return
        self._queue.append((droppable, frame))
        self._ready.set()

    def close(self) -> None:
        """End the stream: the writer sees :attr:`closed` on its next wake-up."""
        self.closed = True
        self._ready.set()

    async def wait(self) -> None:
        """Until there is something to send or the client is closed."""
        await self._ready.wait()

    def take(self) -> bytes:
        """Everything queued, as one chunk to write."""
        frames = b"".join(frame for _, frame in self._queue)
        self._queue.clear()
        self._ready.clear()
        return frames


class Broadcaster:
    """The connected browsers; :meth:`publish` fans an event out to the ones it is for."""

    def __init__(self) -> None:
        self._clients: set[SseClient] = set()

    def __len__(self) -> int:
        return len(self._clients)

    def add(self, client: SseClient) -> None:
        """Register a client (before its snapshot is built, in the same event-loop step)."""
        self._clients.add(client)

    def remove(self, client: SseClient) -> None:
        """Forget a client whose connection ended."""
        self._clients.discard(client)
        client.close()

    def publish(
        self, wearer: str | None, event: str, data: Mapping[str, JsonValue], *, droppable: bool = False
    ) -> None:
        """Queue one event for every client that wants ``wearer``'s events."""
        frame = sse_frame(event, data)
        for client in list(self._clients):
            if client.wants(wearer):
                client.offer(frame, droppable=droppable)
                if client.overflowed:
                    self._clients.discard(client)

    def close_all(self) -> None:
        """End every stream (shutdown)."""
        for client in list(self._clients):
            self.remove(client)
