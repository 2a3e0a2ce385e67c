"""An MCP server written with the official Python SDK (mcp 2.x, MCPServer), served over
Streamable HTTP at /mcp by uvicorn: a second real remote peer for gangway's tests
(tests/peers/python_server.rs).

    PYTHONPATH=.peers/py python3 tests/peers/py_server.py PORT [--certfile F --keyfile F]

PORT 0 picks a free port. The socket is bound and listening before the script prints
`listening on PORT` (with the port it got) on stdout, so a test can wait for that line
instead of sleeping. With --certfile/--keyfile it serves https.
"""

import argparse
import socket
import sys

import uvicorn
from mcp import types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("py-remote")


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
        server.streamable_http_app(host="127.0.0.1"),
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
