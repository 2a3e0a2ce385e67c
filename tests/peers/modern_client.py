#!/usr/bin/env python3
"""The official MCP Python SDK as a 2026-07-28 ("modern") client of gangway.

Usage: python3 tests/peers/modern_client.py MODE GANGWAY_BIN CONFIG_PATH [URL]

Without URL the client starts gangway over stdio; with URL (a running `gangway serve`'s
`/mcp`) it speaks Streamable HTTP to it, where every request is a POST of its own.

MODE is `2026-07-28` (a pinned modern client: no `initialize`, no probe) or `auto` (probes
`server/discover` first and adopts the modern revision when it is answered). gangway fronts
server-everything as backend `everything` with `expose: both` (the meta-tools and every
tool by its prefixed name). The script, each wait bounded:
- checks that the revision in effect is 2026-07-28, and what `server/discover` says;
- lists tools and calls echo by its prefixed name and through `use_tool`;
- runs an operation with progress;
- answers the backend's sampling and elicitation requests through the multi round-trip
  flow (`InputRequiredResult`, then the retry);
- opens a `subscriptions/listen` for the tool list and a resource, has the backend update
  that resource, and waits for the update on the listen;
- over HTTP, cancels a long call by closing its request, and waits for gangway's /metrics
  to count the call as cancelled at the backend;
- reads a resource;
then prints `ok MODE` (exit 0), or the failure (exit 1).

Needs the SDK on PYTHONPATH (`.peers/py`, installed by `.ci/run`).
"""

from __future__ import annotations

import sys
import traceback
import urllib.request

try:
    import anyio
    import mcp_types as types
    from mcp import Client, StdioServerParameters
    from mcp.client.subscriptions import ResourceUpdated
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


def text_of(result) -> str:
    return " ".join(getattr(x, "text", "") for x in result.content)


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
        # server/discover, sent as the auto client's probe is (a pinned client never sends it).
        found = await c.session.send_discover("2026-07-28")
        assert found["supportedVersions"] == ["2026-07-28"], f"discover: {found}"
        assert "tools" in found["capabilities"] and "everything" in found.get("instructions", ""), f"discover: {found}"
        assert found["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "gangway", f"discover: {found}"
        tools = await c.list_tools()
        names = [t.name for t in tools.tools]
        assert "everything__echo" in names and "use_tool" in names, f"tools: {names}"
        r = await c.call_tool("everything__echo", {"message": "hi modern"})
        assert "hi modern" in text_of(r), f"echo answered {r}"
        r = await c.call_tool(
            "use_tool",
            {"backend_server": "everything", "server_tool": "echo", "tool_arguments": {"message": "via use_tool"}},
        )
        assert "via use_tool" in text_of(r), f"use_tool answered {r}"
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
        # The backend asks the client during a call: the ask comes back inside an
        # InputRequiredResult, the SDK answers it and retries, the backend gets the answer.
        r = await c.call_tool("everything__trigger-sampling-request", {"prompt": "what does a gateway do?", "maxTokens": 40})
        text = text_of(r)
        assert "what does a gateway do?" in text and "gangway-test-model" in text, f"sampling answered {r}"
        r = await c.call_tool("everything__trigger-elicitation-request", {})
        assert "Ada Lovelace" in text_of(r), f"elicitation answered {r}"
        assert asked == ["sampling", "elicitation"], f"callbacks: {asked}"
        await listen_for_an_update(c)
        if url is not None:
            await cancel_by_closing(c, url)
        resources = await c.list_resources()
        uri = resources.resources[0].uri
        read = await c.read_resource(uri)
        assert read.contents, f"reading {uri} gave nothing"


async def listen_for_an_update(c) -> None:
    """A listen for the tool list and one resource: gangway honors both (the resource is
    one a backend lists), subscribes to it at the backend, and the backend's update reaches
    the listen."""
    resources = await c.list_resources()
    assert resources.resources, "no resources listed"
    uri = str(resources.resources[0].uri)
    async with c.listen(tools_list_changed=True, resource_subscriptions=[uri]) as sub:
        honored = sub.honored
        assert honored.tools_list_changed, f"honored {honored}"
        assert [str(u) for u in honored.resource_subscriptions or []] == [uri], f"honored {honored}"
        # server-everything sends updates of subscribed resources once toggled on (at once,
        # then every 5 s).
        r = await c.call_tool("everything__toggle-subscriber-updates", {})
        assert not r.is_error, f"toggle failed: {r}"
        with anyio.fail_after(15):
            async for event in sub:
                if isinstance(event, ResourceUpdated) and str(event.uri) == uri:
                    break
        await c.call_tool("everything__toggle-subscriber-updates", {})


async def cancel_by_closing(c, url: str) -> None:
    """Over HTTP a 2026-07-28 client cancels a request by closing it: gangway must cancel
    the call at the backend, which its /metrics count."""
    metrics = url.rsplit("/mcp", 1)[0] + "/metrics"
    line = 'gangway_requests_total{backend="everything",method="tools/call",outcome="cancelled"}'

    def cancelled() -> int:
        with urllib.request.urlopen(metrics, timeout=5) as r:
            for row in r.read().decode().splitlines():
                if row.startswith(line):
                    return int(float(row.split()[-1]))
        return 0

    before = await anyio.to_thread.run_sync(cancelled)
    with anyio.move_on_after(1.0) as scope:
        await c.call_tool("everything__trigger-long-running-operation", {"duration": 20, "steps": 4})
    assert scope.cancelled_caught, "the long call ended by itself"
    with anyio.fail_after(10):
        while await anyio.to_thread.run_sync(cancelled) <= before:
            await anyio.sleep(0.1)


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
