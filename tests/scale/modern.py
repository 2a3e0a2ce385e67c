#!/usr/bin/env python3
"""MCP Python SDK clients pinned to revision 2026-07-28 through a load balancer: every call
asks the client something on the way (the mock's `m__ask` sends a sampling request), so
each call is answered with an InputRequiredResult and completed by a retry, which must reach
the gangway instance that holds the call. Driven by tests/scale/mod.rs.

Usage: python3 tests/scale/modern.py URL CLIENTS

Runs CLIENTS clients one after the other (a handshake-era backend's request does not say
which call it belongs to, so calls that ask at once through one shared backend could not be
told apart), each making ROUNDS such calls; every call must come back with the client's own
sampled answer. Prints `{"ok": CALLS}` on stdout, or
`{"fail": REASON}` (details on stderr) and exits 1. Every wait is bounded (SCENARIO_TIMEOUT).
Needs the SDK on PYTHONPATH (`.peers/py`, installed by `.ci/run`).
"""

from __future__ import annotations

import json
import sys
import traceback

try:
    import anyio
    import mcp_types as types
    from mcp import Client
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(json.dumps({"fail": f"the MCP Python SDK is not importable ({e}); run .ci/run, which installs it into .peers/py"}))
    sys.exit(1)

SCENARIO_TIMEOUT = 60.0
ROUNDS = 3


async def one_client(url: str, n: int, done: list[int]) -> None:
    async def on_sampling(context, params):
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"client {n}"),
            model="scale-test",
        )

    async with Client(url, mode="2026-07-28", sampling_callback=on_sampling, cache=None, read_timeout_seconds=30) as c:
        assert c.protocol_version == "2026-07-28", f"negotiated {c.protocol_version}"
        for _ in range(ROUNDS):
            r = await c.call_tool(
                "m__ask",
                {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}},
            )
            text = " ".join(getattr(x, "text", "") for x in r.content)
            assert f"client {n}" in text, f"client {n} got {text!r}"
            done.append(n)


async def scenario(url: str, clients: int) -> int:
    done: list[int] = []
    with anyio.fail_after(SCENARIO_TIMEOUT):
        for n in range(clients):
            await one_client(url, n, done)
    return len(done)


def main() -> int:
    url, clients = sys.argv[1], int(sys.argv[2])
    try:
        calls = anyio.run(scenario, url, clients)
    except BaseException as e:  # noqa: BLE001 - reported to the Rust test
        traceback.print_exc()
        print(json.dumps({"fail": repr(e)}))
        return 1
    print(json.dumps({"ok": calls}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
