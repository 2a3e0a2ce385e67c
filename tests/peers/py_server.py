"""An MCP server written with the official Python SDK (mcp 2.x, MCPServer), served over
Streamable HTTP at /mcp by uvicorn: a second real remote peer for gangway's tests
(tests/peers/python_server.rs).

    PYTHONPATH=.peers/py python3 tests/peers/py_server.py PORT [--certfile F --keyfile F]

PORT 0 picks a free port. The socket is bound and listening before the script prints
`listening on PORT` (with the port it got) on stdout, so a test can wait for that line
instead of sleeping. With --certfile/--keyfile it serves https.

Every message it sends is kept in a small in-memory event store, so a client whose
answer's stream is cut can resume it with `Last-Event-ID`; the tool `interrupted` cuts
its own stream half-way to make a client do so.
"""

import argparse
import asyncio
import socket
import sys
from collections import OrderedDict, deque
from collections.abc import Callable

import uvicorn
from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import GET_STREAM_KEY, EventCallback, EventMessage, EventStore
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse

server = MCPServer("py-remote")


def is_answer(message: JSONRPCMessage) -> bool:
    return isinstance(message, JSONRPCResponse | JSONRPCError)


class BoundedEventStore(EventStore):
    """Events kept in memory, bounded: the last EVENTS_PER_STREAM of each of the last
    STREAMS streams. An event id is `SEQ/STREAM`, so it names its stream.

    A replay of a stream that was held (see `hold`) waits until a chosen message (by
    default the stream's answer) is stored, and so replays everything the server sent
    after the cut in one go: the SDK registers the resumed stream for live messages only
    after the replay, and a message sent in between would be neither replayed nor sent
    live.

    One store serves every session and a stream id is the request's id (or the GET
    stream's key), so two sessions that cut streams of the same id at once would mix:
    the tests cut streams in one session at a time.
    """

    STREAMS = 64
    EVENTS_PER_STREAM = 256

    def __init__(self) -> None:
        self._streams: OrderedDict[str, deque[tuple[int, JSONRPCMessage | None]]] = OrderedDict()
        self._seq = 0
        # Streams whose replay waits: the event set once a message `until` accepts is stored.
        self._held: dict[str, tuple[asyncio.Event, Callable[[JSONRPCMessage], bool]]] = {}

    def hold(self, stream_id: str, until: Callable[[JSONRPCMessage], bool] = is_answer) -> None:
        """Replays of `stream_id` wait until a message `until` accepts is stored."""
        self._held[stream_id] = (asyncio.Event(), until)

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        self._seq += 1
        events = self._streams.pop(stream_id, None)
        if events is None:
            events = deque(maxlen=self.EVENTS_PER_STREAM)
        events.append((self._seq, message))
        self._streams[stream_id] = events
        while len(self._streams) > self.STREAMS:
            self._streams.popitem(last=False)
        held = self._held.get(stream_id)
        if held is not None and message is not None and held[1](message):
            self._held.pop(stream_id)[0].set()
        return f"{self._seq}/{stream_id}"

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        seq, _, stream_id = last_event_id.partition("/")
        if not seq.isdigit() or stream_id not in self._streams:
            return None
        if stream_id in self._held:
            await self._held[stream_id][0].wait()
        for n, message in list(self._streams.get(stream_id, ())):
            if n > int(seq) and message is not None:
                await send_callback(EventMessage(message, f"{n}/{stream_id}"))
        return stream_id


events = BoundedEventStore()


@server.tool()
def echo(text: str) -> str:
    """Returns its text, prefixed."""
    return f"py echo: {text}"


@server.tool()
async def count(steps: int, ctx: Context) -> str:
    """Reports progress once per step, then says how many steps it took."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return f"counted {steps}"


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Asks the client's model (sampling) and returns its answer."""
    result = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))],
        max_tokens=50,
        # On the tool call's own stream, not a standalone GET stream.
        related_request_id=ctx.request_id,
    )
    content = result.content
    text = content.text if isinstance(content, types.TextContent) else str(content)
    return f"the model said: {text}"


@server.tool()
async def interrupted(steps: int, ctx: Context) -> str:
    """Reports progress for half its steps, cuts its answer's event stream (the client
    resumes it with Last-Event-ID), reports the other half and returns."""
    half = steps // 2
    for step in range(1, half + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    if ctx.request_context.close_sse_stream is None:
        # The SDK cuts only a stream whose client can resume it: 2025-11-25 or later.
        raise ValueError(f"the stream cannot be cut (protocol version {ctx.protocol_version})")
    events.hold(str(ctx.request_id))
    await ctx.close_sse_stream()
    for step in range(half + 1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return f"interrupted after {half} of {steps} steps, finished all"


@server.tool()
async def announce(text: str, ctx: Context) -> str:
    """Sends `text` as a log message that belongs to no request (the server's own stream)."""
    await ctx.session.send_log_message("info", text, logger="announce")
    return "announced"


@server.tool()
async def cut_own_stream(text: str, ctx: Context) -> str:
    """Cuts the server's own event stream (the GET stream; the client opens it again with
    Last-Event-ID), then sends `text` as a log message on it: it reaches the client only
    by the replay."""
    if ctx.request_context.close_standalone_sse_stream is None:
        raise ValueError(f"the stream cannot be cut (protocol version {ctx.protocol_version})")

    def is_text(message: JSONRPCMessage) -> bool:
        params = getattr(message, "params", None) or {}
        return isinstance(params, dict) and params.get("data") == text

    events.hold(GET_STREAM_KEY, until=is_text)
    await ctx.close_standalone_sse_stream()
    await ctx.session.send_log_message("info", text, logger="announce")
    return "cut"


@server.resource("py://greeting")
def greeting() -> str:
    """A fixed greeting."""
    return "hello from the python server"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(64)
    config = uvicorn.Config(
        server.streamable_http_app(host="127.0.0.1", event_store=events),
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
