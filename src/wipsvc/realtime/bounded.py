"""A Socket.IO server that never buffers without limit for one client.

engine.io keeps an unbounded queue of packets per connection, emptied only as fast as the
client reads. A client that stops reading (or long-polls no more) would make the server
hold every event and answer meant for it. Here, a packet for a connection that already has
`max_queued_packets` waiting is not queued: the connection is closed instead, and what it
had waiting is dropped at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import engineio
import socketio

log = logging.getLogger(__name__)


class _BoundedEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    max_queued_packets = 2000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closing: set[asyncio.Task[None]] = set()

    async def send_packet(self, sid: str, pkt: Any) -> None:
        socket = self.sockets.get(sid)
        if socket is None or socket.closing or socket.closed:
            return
        if socket.queue.qsize() >= self.max_queued_packets:
            socket.closing = True  # from now on nothing more is queued for it
            task = asyncio.get_running_loop().create_task(self._close_overflowing(sid, socket))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return
        await super().send_packet(sid, pkt)

    async def _close_overflowing(self, sid: str, socket: Any) -> None:
        # A task of its own: the packet that overflowed may be part of a broadcast still
        # iterating over the room this disconnect takes the client out of.
        log.warning(
            "closing a Socket.IO connection that is not reading: %d packets waiting to be sent",
            socket.queue.qsize(),
        )
        socket.closing = False  # close() does nothing on a socket already closing
        try:
            await socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
        except Exception:
            log.exception("closing Socket.IO connection %s failed", sid)
        while not socket.queue.empty():
            socket.queue.get_nowait()
            socket.queue.task_done()
        # Ends the WebSocket writer (which then closes the WebSocket) or the pending poll, as
        # soon as the transport takes bytes again or the client goes away.
        socket.queue.put_nowait(None)


class BoundedAsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *, max_queued_packets: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eio.max_queued_packets = max_queued_packets

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return _BoundedEngineIO
