#!/usr/bin/env python3
"""The official MCP Python SDK as a 2026-07-28 ("modern") client of gangway over stdio.

Usage: python3 tests/peers/modern_client.py MODE GANGWAY_BIN CONFIG_PATH [URL]

With URL (a running `gangway serve`'s `/mcp`), the client speaks Streamable HTTP to it instead
of starting gangway over stdio, and the steps gangway does not serve over HTTP yet (the
multi round-trip requests and `subscriptions/listen`) are left out.

MODE is `2026-07-28` (a pinned modern client: no `initialize`, no probe) or `auto` (probes
`server/discover` first and adopts the modern revision when it is answered). gangway fronts
server-everything as backend `everything` in tools mode. The script lists tools, calls the
echo tool, runs an operation with progress, opens a `subscriptions/listen`, answers the
backend's sampling and elicitation requests through the multi round-trip flow, reads a
resource and checks that the session is modern, then prints `ok MODE`
(exit 0), or the failure (exit 1). Every wait is bounded.

Needs the SDK on PYTHONPATH (`.peers/py`, installed by `.ci/run`).
"""

from __future__ import annotations

import sys
import traceback

try:
    import anyio
    import mcp_types as types
    from mcp import Client, StdioServerParameters
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(f"FAIL import: the MCP Python SDK is not importable ({e}); run .ci/run, which installs it into .peers/py")
    sys.exit(1)

TIMEOUT = 40.0
ELICITED = {"name": "Ada Lovelace", "check": True, "email": "ada@example.com", "integer": 7}
asked: list[str] = []


async def on_sampling(context, params):
    asked.append("sampling")
    prompt = " ".join(getattr(b, "text", "") for m in params.messages for b in m.content_as_list)
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled: {prompt}"),
        model="gangway-test-model",
    )


async def on_elicitation(context, params):
    asked.append("elicitation")
    return types.ElicitResult(action="accept", content=dict(ELICITED))


async def scenario(mode: str, gangway: str, config: str, url: str | None) -> None:
    with anyio.fail_after(TIMEOUT):
        await steps(mode, gangway, config, url)


async def steps(mode: str, gangway: str, config: str, url: str | None) -> None:
    target = url or StdioServerParameters(command=gangway, args=["--config", config])
    async with Client(
        target,
        mode=mode,
        client_info=types.Implementation(name="modern-probe", version="1.0"),
        sampling_callback=on_sampling,
        elicitation_callback=on_elicitation,
        cache=None,
        read_timeout_seconds=30,
    ) as c:
        assert c.protocol_version == "2026-07-28", f"negotiated {c.protocol_version}"
        tools = await c.list_tools()
        names = [t.name for t in tools.tools]
        assert "everything__echo" in names, f"tools: {names}"
        r = await c.call_tool("everything__echo", {"message": "hi modern"})
        text = " ".join(getattr(x, "text", "") for x in r.content)
        assert "hi modern" in text, f"echo answered {r}"
        # Progress: the client's token reaches the backend and its progress comes back.
        steps: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            steps.append(progress)

        r = await c.call_tool(
            "everything__trigger-long-running-operation",
            {"duration": 0.3, "steps": 3},
            progress_callback=on_progress,
        )
        assert not r.is_error, f"long-running operation failed: {r}"
        assert steps, "no progress reached the client"
        if url is not None:
            return await read_a_resource(c)
        # A listen is acknowledged with what gangway honors: the list changes.
        async with c.listen(tools_list_changed=True, prompts_list_changed=True) as sub:
            honored = sub.honored
            assert honored.tools_list_changed and honored.prompts_list_changed, f"honored {honored}"
        # The backend asks the client during a call: the ask comes back inside an
        # InputRequiredResult, the SDK answers it and retries, the backend gets the answer.
        r = await c.call_tool("everything__trigger-sampling-request", {"prompt": "what does a gateway do?", "maxTokens": 40})
        text = " ".join(getattr(x, "text", "") for x in r.content)
        assert "what does a gateway do?" in text and "gangway-test-model" in text, f"sampling answered {r}"
        r = await c.call_tool("everything__trigger-elicitation-request", {})
        text = " ".join(getattr(x, "text", "") for x in r.content)
        assert "Ada Lovelace" in text, f"elicitation answered {r}"
        assert asked == ["sampling", "elicitation"], f"callbacks: {asked}"
        await read_a_resource(c)


async def read_a_resource(c) -> None:
    resources = await c.list_resources()
    assert resources.resources, "no resources listed"
    uri = resources.resources[0].uri
    read = await c.read_resource(uri)
    assert read.contents, f"reading {uri} gave nothing"


def main() -> int:
    mode, gangway, config = sys.argv[1:4]
    url = sys.argv[4] if len(sys.argv) > 4 else None
    try:
        anyio.run(scenario, mode, gangway, config, url)
    except BaseException:  # noqa: BLE001 - reported to the Rust test
        traceback.print_exc()
        print(f"FAIL {mode}")
        return 1
    print(f"ok {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
