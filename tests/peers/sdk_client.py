#!/usr/bin/env python3
"""End-to-end scenarios: the official MCP Python SDK as gangway's client, real servers behind it.

Usage: python3 tests/peers/sdk_client.py SCENARIO GANGWAY_BIN CONFIG_PATH [stdio|http|sse]

Needs the SDK on PYTHONPATH (`.peers/py`, installed by `.ci/run`). The script starts gangway
through the SDK's `stdio_client` with `--config CONFIG_PATH`, runs one scenario and prints
`ok SCENARIO` (exit 0), or a failure report (exit 1). The backends' commands are read from the
same config, so scenarios that compare gangway with a backend seen directly start that backend
exactly as gangway does.

With `http` (or `sse`) the script starts one `gangway serve` on a free loopback port for the
scenario and connects every gangway session of it with the SDK's Streamable HTTP client (or
its HTTP+SSE client): sessions of one scenario then share one gangway and its backends.

Every client session declares sampling, elicitation and roots with callbacks that answer
deterministically, records logging messages and server notifications, and taps the wire in
both directions (`Recorder.wire`) so a scenario can assert on what was actually sent. Every
wait is bounded: the whole scenario by SCENARIO_TIMEOUT, each request by STEP_TIMEOUT.

On failure the last messages of every session's wire go to stderr; set GANGWAY_PEERS_WIRE=1 to
see them on success too.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

try:
    import anyio
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.shared.exceptions import MCPDeprecationWarning
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(f"FAIL import: the MCP Python SDK is not importable ({e}); run .ci/run, which installs it into .peers/py")
    sys.exit(1)

SCENARIO_TIMEOUT = 40.0
STEP_TIMEOUT = 15.0

ROOTS = [("file:///tmp/gangway-peer-root-one", "root-one"), ("file:///tmp/gangway-peer-root-two", "root-two")]
ELICITED = {"name": "Ada Lovelace", "check": True, "email": "ada@example.com", "integer": 7}
SAMPLING_MODEL = "gangway-test-model"

# The 2025-era features under test (logging, roots, ...) are deprecated in the 2026 revision.
warnings.simplefilter("ignore", MCPDeprecationWarning)

# Every session's recorder, so a failure can show what was on the wire.
RECORDERS: list["Recorder"] = []


class Failure(Exception):
    """A scenario's expectation did not hold."""


def check(cond: Any, message: str) -> None:
    if not cond:
        raise Failure(message)


def sampled_text(prompt: str) -> str:
    """The deterministic answer of the sampling callback to a prompt."""
    return f"sampled answer for [{prompt}]"


# --------------------------------------------------------------------------------------------
# A client session with recording callbacks and a tapped wire
# --------------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """What one client session saw: callbacks invoked, notifications and every wire message."""

    label: str
    wire: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    logs: list[types.LoggingMessageNotificationParams] = field(default_factory=list)
    notifications: list[Any] = field(default_factory=list)
    sampling: list[types.CreateMessageRequestParams] = field(default_factory=list)
    elicitations: list[types.ElicitRequestParams] = field(default_factory=list)
    roots_calls: int = 0
    # Optional hook run inside the sampling callback before it answers (to hold answers back).
    sampling_gate: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        self._changed = anyio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, pred: Callable[[], Any], timeout: float, what: str) -> Any:
        """Waits until `pred()` is truthy (re-checked on every recorded event) and returns it."""
        with anyio.move_on_after(timeout):
            while True:
                event = self._changed
                value = pred()
                if value:
                    return value
                await event.wait()
        raise Failure(f"[{self.label}] timed out after {timeout} s waiting for {what}")

    def record(self, direction: str, item: Any) -> None:
        if isinstance(item, Exception):
            msg: dict[str, Any] = {"transport_error": repr(item)}
        else:
            msg = item.message.model_dump(by_alias=True, mode="json", exclude_none=True)
        self.wire.append((time.monotonic(), direction, msg))
        self.changed()

    def incoming(self) -> list[dict[str, Any]]:
        return [m for _, d, m in self.wire if d == "in"]

    def outgoing(self) -> list[dict[str, Any]]:
        return [m for _, d, m in self.wire if d == "out"]

    # ----- the client's callbacks -----

    async def on_sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampling.append(params)
        self.changed()
        if self.sampling_gate is not None:
            await self.sampling_gate()
        prompt = " ".join(
            block.text for m in params.messages for block in m.content_as_list if isinstance(block, types.TextContent)
        )
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=sampled_text(prompt)),
            model=SAMPLING_MODEL,
            stop_reason="endTurn",
        )

    async def on_elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitations.append(params)
        self.changed()
        return types.ElicitResult(action="accept", content=dict(ELICITED))

    async def on_roots(self, context: Any) -> types.ListRootsResult:
        self.roots_calls += 1
        self.changed()
        return types.ListRootsResult(roots=[types.Root(uri=uri, name=name) for uri, name in ROOTS])

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)
        self.changed()

    async def on_message(self, message: Any) -> None:
        self.notifications.append(message)
        self.changed()


def transport(target: StdioServerParameters | str) -> Any:
    """The SDK transport for `target`: a command (stdio), or a URL (`/sse`: HTTP+SSE, else
    Streamable HTTP)."""
    if isinstance(target, StdioServerParameters):
        return stdio_client(target)
    if target.endswith("/sse"):
        return sse_client(target)
    return streamable_http_client(target)


@asynccontextmanager
async def connect(target: StdioServerParameters | str, label: str) -> AsyncIterator[tuple[ClientSession, Recorder]]:
    """An initialized SDK client session with `target` as its server, and its recorder."""
    rec = Recorder(label)
    RECORDERS.append(rec)
    async with transport(target) as (read, write):
        to_session, session_reads = anyio.create_memory_object_stream[Any](0)
        session_writes, from_session = anyio.create_memory_object_stream[Any](0)

        async def pump_in() -> None:
            async with to_session:
                async for item in read:
                    rec.record("in", item)
                    try:
                        await to_session.send(item)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        # The session closed while a late message (a log line, say) was
                        # on its way: it is recorded above, and nobody is left to read it.
                        return

        async def pump_out() -> None:
            async with from_session:
                async for item in from_session:
                    rec.record("out", item)
                    await write.send(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_in)
            tg.start_soon(pump_out)
            async with ClientSession(
                session_reads,
                session_writes,
                read_timeout_seconds=STEP_TIMEOUT,
                sampling_callback=rec.on_sampling,
                elicitation_callback=rec.on_elicitation,
                list_roots_callback=rec.on_roots,
                logging_callback=rec.on_log,
                message_handler=rec.on_message,
                client_info=types.Implementation(name="gangway-peer-tests", version="1.0.0"),
            ) as session:
                with anyio.fail_after(STEP_TIMEOUT):
                    await session.initialize()
                yield session, rec
            tg.cancel_scope.cancel()


@dataclass
class Ctx:
    gangway: str
    config_path: str
    config: dict[str, Any]
    # The URL of the scenario's `gangway serve`, when the scenario runs over HTTP.
    url: str | None = None

    def gangway_target(self) -> StdioServerParameters | str:
        return self.url or self.gangway_params()

    def gangway_params(self) -> StdioServerParameters:
        # XDG_CACHE_HOME: each scenario has its own tool catalog, never the user's.
        env = {k: os.environ[k] for k in ("RUST_LOG", "RUST_BACKTRACE", "XDG_CACHE_HOME") if k in os.environ}
        return StdioServerParameters(
            command=self.gangway, args=["--config", self.config_path, "--log-level", "debug"], env=env
        )

    def backend_params(self, name: str) -> StdioServerParameters:
        b = self.config["backends"][name]
        return StdioServerParameters(command=b["command"], args=b.get("args", []), env=b.get("env") or None)


def through_gangway(ctx: Ctx) -> Any:
    return connect(ctx.gangway_target(), "gangway")


def direct(ctx: Ctx, backend: str) -> Any:
    return connect(ctx.backend_params(backend), f"direct {backend}")


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def call(session: ClientSession, name: str, args: dict[str, Any] | None = None, **kw: Any) -> types.CallToolResult:
    with anyio.fail_after(STEP_TIMEOUT):
        result = await session.call_tool(name, args or {}, **kw)
    check(not result.is_error, f"tool {name} returned isError: {text_of(result)!r}")
    return result


async def tools_of(session: ClientSession) -> list[types.Tool]:
    with anyio.fail_after(STEP_TIMEOUT):
        return (await session.list_tools()).tools


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


async def tools_mode_lists_every_tool_of_both_prefixed(ctx: Ctx) -> None:
    expected: dict[str, dict[str, Any]] = {}
    for backend in ("everything", "time"):
        async with direct(ctx, backend) as (session, _):
            for tool in await tools_of(session):
                expected[f"{backend}__{tool.name}"] = dump(tool)
    check(len([n for n in expected if n.startswith("everything__")]) >= 13, "server-everything listed too few tools")
    check({"time__get_current_time", "time__convert_time"} <= expected.keys(), f"unexpected time tools: {list(expected)}")

    async with through_gangway(ctx) as (session, _):
        tools = await tools_of(session)
    names = [t.name for t in tools]
    check(len(names) == len(set(names)), f"duplicate names in gangway's tools/list: {names}")
    missing = sorted(expected.keys() - set(names))
    extra = sorted(set(names) - expected.keys())
    check(not missing and not extra, f"gangway's tools differ from the backends' own: missing {missing}, extra {extra}")
    for tool in tools:
        seen = dump(tool)
        want = dict(expected[tool.name], name=tool.name)
        check(seen == want, f"{tool.name} changed in passing:\n gangway: {seen}\n backend: {want}")
    for backend in ("everything", "time"):
        n_gw = len([n for n in names if n.startswith(backend + "__")])
        n_direct = len([n for n in expected if n.startswith(backend + "__")])
        check(n_gw == n_direct, f"{backend}: gangway lists {n_gw} tools, the backend itself {n_direct}")


async def meta_mode_lists_use_tool_and_discover(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, _):
        tools = await tools_of(session)
        names = sorted(t.name for t in tools)
        check(names == ["discover_backend_tools", "use_tool"], f"meta mode tools/list: {names}")
        for tool in tools:
            enum = tool.input_schema.get("properties", {}).get("backend_server", {}).get("enum")
            check(enum == ["everything", "time"], f"{tool.name}: backend_server enum is {enum}")
        result = await call(session, "discover_backend_tools", {"backend_server": "time"})
        sc = result.structured_content
        check(isinstance(sc, dict) and isinstance(sc.get("tools"), list), f"no structuredContent.tools: {sc!r}")
        listed = sorted(t.get("name") for t in sc["tools"])
        check(listed == ["convert_time", "get_current_time"], f"discover_backend_tools(time) listed {listed}")
        for t in sc["tools"]:
            check(t.get("backend") == "time", f"tool entry without backend 'time': {t}")
            check(isinstance(t.get("inputSchema"), dict), f"tool entry without inputSchema: {t}")
        check(json.loads(text_of(result)) == sc, "the JSON text of discover_backend_tools differs from structuredContent")


async def echo_through_use_tool_and_tools_mode(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, _):
        names = {t.name for t in await tools_of(session)}
        check({"use_tool", "discover_backend_tools", "everything__echo"} <= names, f"expose both lists {sorted(names)}")
        meta = await call(
            session,
            "use_tool",
            {"backend_server": "everything", "server_tool": "echo", "tool_arguments": {"message": "via use_tool"}},
        )
        check(text_of(meta) == "Echo: via use_tool", f"use_tool echo: {text_of(meta)!r}")
        prefixed = await call(session, "everything__echo", {"message": "via everything__echo"})
        check(text_of(prefixed) == "Echo: via everything__echo", f"everything__echo: {text_of(prefixed)!r}")


async def long_running_progress_reaches_the_client(ctx: Ctx) -> None:
    steps = 4
    progress: list[tuple[float, float | None, str | None]] = []

    async with through_gangway(ctx) as (session, rec):

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append((p, total, message))
            rec.changed()

        result = await call(
            session,
            "everything__trigger-long-running-operation",
            {"duration": 1.2, "steps": steps},
            progress_callback=on_progress,
        )
        check(
            text_of(result) == f"Long running operation completed. Duration: 1.2 seconds, Steps: {steps}.",
            f"unexpected result: {text_of(result)!r}",
        )
        await rec.wait_for(lambda: len(progress) >= steps, 5, f"{steps} progress notifications (got {progress})")
        values = [p for p, _, _ in progress]
        check(values == [float(i) for i in range(1, steps + 1)], f"progress values {values}")
        check(all(t == steps for _, t, _ in progress), f"progress totals {progress}")
        request = next(m for m in rec.outgoing() if m.get("method") == "tools/call")
        token = request["params"]["_meta"]["progressToken"]
        wire_tokens = {m["params"]["progressToken"] for m in rec.incoming() if m.get("method") == "notifications/progress"}
        check(wire_tokens == {token}, f"progress tokens on the wire {wire_tokens}, the request's {token!r}")


async def sampling_request_answered_by_client_callback(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, rec):
        result = await call(
            session, "everything__trigger-sampling-request", {"prompt": "what does a gateway do?", "maxTokens": 40}
        )
        check(len(rec.sampling) == 1, f"sampling callback invoked {len(rec.sampling)} times")
        prompt = rec.sampling[0].messages[0].content_as_list[0]
        check(
            isinstance(prompt, types.TextContent) and "what does a gateway do?" in prompt.text,
            f"sampling request: {rec.sampling[0]}",
        )
        text = text_of(result)
        check(sampled_text(prompt.text) in text, f"the callback's answer is not in the tool result: {text!r}")
        check(SAMPLING_MODEL in text, f"model missing from the tool result: {text!r}")


async def elicitation_round_trip(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, rec):
        result = await call(session, "everything__trigger-elicitation-request", {})
        check(len(rec.elicitations) == 1, f"elicitation callback invoked {len(rec.elicitations)} times")
        params = rec.elicitations[0]
        check("Please provide inputs" in params.message, f"elicitation request: {params}")
        text = text_of(result)
        check("User provided the requested information" in text, f"tool result: {text!r}")
        check("- Name: Ada Lovelace" in text and "- Favorite Integer: 7" in text, f"tool result: {text!r}")


async def roots_reach_the_backend(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, rec):
        result = await call(session, "everything__get-roots-list", {})
        check(rec.roots_calls >= 1, "the roots callback was never invoked")
        text = text_of(result)
        check(f"Current MCP Roots ({len(ROOTS)} total)" in text, f"tool result: {text!r}")
        for uri, name in ROOTS:
            check(uri in text and name in text, f"root {name} ({uri}) missing from: {text!r}")


async def structured_content_passes_through(ctx: Ctx) -> None:
    cities = ["Chicago", "Los Angeles"]
    expected: dict[str, Any] = {}
    async with direct(ctx, "everything") as (session, _):
        schema = next(dump(t) for t in await tools_of(session) if t.name == "get-structured-content")
        for city in cities:
            expected[city] = dump(await call(session, "get-structured-content", {"location": city}))
    async with through_gangway(ctx) as (session, _):
        tool = next((dump(t) for t in await tools_of(session) if t.name == "everything__get-structured-content"), None)
        check(tool is not None, "everything__get-structured-content is not listed")
        check(tool.get("outputSchema") == schema.get("outputSchema"), f"outputSchema changed: {tool}")
        for city in cities:
            seen = dump(await call(session, "everything__get-structured-content", {"location": city}))
            check(seen == expected[city], f"{city}: through gangway {seen}\n directly {expected[city]}")
            check(isinstance(seen.get("structuredContent"), dict), f"no structuredContent: {seen}")
    check(expected["Chicago"]["structuredContent"]["conditions"] == "Light rain / drizzle", f"{expected}")


async def resources_list_and_read(ctx: Ctx) -> None:
    text_uri = "demo://resource/dynamic/text/3"
    async with direct(ctx, "everything") as (session, _):
        with anyio.fail_after(STEP_TIMEOUT):
            resources = [dump(r) for r in (await session.list_resources()).resources]
            templates = [dump(t) for t in (await session.list_resource_templates()).resource_templates]
            first = resources[0]["uri"] if resources else None
            first_read = dump(await session.read_resource(first)) if first else None
    check(resources and templates, f"server-everything lists resources {resources} and templates {templates}")
    async with through_gangway(ctx) as (session, _):
        with anyio.fail_after(STEP_TIMEOUT):
            seen = [dump(r) for r in (await session.list_resources()).resources]
            check(seen == resources, f"resources/list through gangway:\n {seen}\n directly:\n {resources}")
            seen_t = [dump(t) for t in (await session.list_resource_templates()).resource_templates]
            check(seen_t == templates, f"templates through gangway:\n {seen_t}\n directly:\n {templates}")
            read = dump(await session.read_resource(first))
            check(read == first_read, f"read {first}: through gangway {read}\n directly {first_read}")
            dynamic = await session.read_resource(text_uri)
    contents = dynamic.contents
    check(len(contents) == 1 and str(contents[0].uri) == text_uri, f"read {text_uri}: {contents}")
    check(getattr(contents[0], "text", "").startswith("Resource 3:"), f"read {text_uri}: {contents}")


async def prompts_list_and_get(ctx: Ctx) -> None:
    expected: dict[str, Any] = {}
    for backend in ("everything", "time"):
        async with direct(ctx, backend) as (session, _):
            if session.server_capabilities is None or session.server_capabilities.prompts is None:
                continue
            with anyio.fail_after(STEP_TIMEOUT):
                for p in (await session.list_prompts()).prompts:
                    expected[f"{backend}__{p.name}"] = dump(p)
    check("everything__args-prompt" in expected, f"server-everything prompts: {list(expected)}")
    async with through_gangway(ctx) as (session, _):
        with anyio.fail_after(STEP_TIMEOUT):
            prompts = (await session.list_prompts()).prompts
            for p in prompts:
                check(p.name in expected, f"unexpected prompt {p.name}; expected {sorted(expected)}")
                check(dump(p) == dict(expected[p.name], name=p.name), f"{p.name} changed in passing: {dump(p)}")
            check(len(prompts) == len(expected), f"gangway lists {[p.name for p in prompts]}, expected {sorted(expected)}")
            got = await session.get_prompt("everything__args-prompt", {"city": "Paris", "state": "Texas"})
            text = got.messages[0].content.text
            check(text == "What's weather in Paris, Texas?", f"args-prompt: {text!r}")
            simple = await session.get_prompt("everything__simple-prompt")
            check(
                simple.messages[0].content.text == "This is a simple prompt without arguments.", f"simple: {simple}"
            )


async def completion_for_prompt_argument(ctx: Ctx) -> None:
    ref = types.PromptReference(type="ref/prompt", name="everything__completable-prompt")
    async with through_gangway(ctx) as (session, _):
        with anyio.fail_after(STEP_TIMEOUT):
            names = {p.name for p in (await session.list_prompts()).prompts}
            check(ref.name in names, f"{ref.name} not in {sorted(names)}")
            dep = await session.complete(ref, {"name": "department", "value": "S"})
            check(dep.completion.values == ["Sales", "Support"], f"department 'S': {dep.completion}")
            lead = await session.complete(ref, {"name": "name", "value": ""}, context_arguments={"department": "Engineering"})
            check(lead.completion.values == ["Alice", "Bob", "Charlie"], f"name with Engineering: {lead.completion}")
            template = types.ResourceTemplateReference(type="ref/resource", uri="demo://resource/dynamic/text/{resourceId}")
            rid = await session.complete(template, {"name": "resourceId", "value": "7"})
            check(rid.completion.values == ["7"], f"resourceId '7': {rid.completion}")


async def logging_reaches_the_client(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, rec):
        with anyio.fail_after(STEP_TIMEOUT):
            await session.set_logging_level("debug")
        started = await call(session, "everything__toggle-simulated-logging", {})
        check("Started simulated" in text_of(started), f"toggle: {text_of(started)!r}")

        def simulated() -> list[types.LoggingMessageNotificationParams]:
            # server-everything picks one of eight at random; the alert one is spelled
            # "Alert level-message", the others "<Level>-level message".
            return [m for m in rec.logs if isinstance(m.data, str) and ("-level message" in m.data or "level-message" in m.data)]

        got = await rec.wait_for(simulated, 8, "a simulated log message from server-everything")
        check(got[0].logger == "everything", f"logger of a simulated log message (it had none): {got[0]}")
        for m in rec.logs:
            check(m.logger == "everything" or (m.logger or "").startswith("everything/"), f"log from {m.logger}: {m}")
        stopped = await call(session, "everything__toggle-simulated-logging", {})
        check("Stopped simulated" in text_of(stopped), f"toggle: {text_of(stopped)!r}")


async def cancellation_of_a_long_call(ctx: Ctx) -> None:
    duration = 2.0
    async with through_gangway(ctx) as (session, rec):
        await tools_of(session)
        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)
            rec.changed()

        outcome: list[Any] = []
        started = time.monotonic()
        with anyio.CancelScope() as scope:

            async def long_call() -> None:
                outcome.append(
                    await session.call_tool(
                        "everything__trigger-long-running-operation",
                        {"duration": duration, "steps": 4},
                        progress_callback=on_progress,
                    )
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_call)
                await rec.wait_for(lambda: progress, 5, "the first progress notification")
                scope.cancel()
        cancelled_at = time.monotonic()
        check(not outcome, f"the call finished before it was cancelled: {outcome}")
        request = next(
            m for m in rec.outgoing() if m.get("method") == "tools/call" and m["params"]["name"].endswith("long-running-operation")
        )
        rid = request["id"]
        await rec.wait_for(
            lambda: any(m.get("method") == "notifications/cancelled" and m["params"]["requestId"] == rid for m in rec.outgoing()),
            2,
            "the SDK's notifications/cancelled",
        )
        # Give the backend time to have finished the operation had it not been cancelled.
        await anyio.sleep(max(0.0, started + duration + 1.0 - time.monotonic()))
        answers = [m for m in rec.incoming() if m.get("id") == rid and "method" not in m]
        check(not answers, f"an answer arrived for the cancelled request {rid}: {answers}")
        late = [
            (t - cancelled_at, m)
            for t, d, m in rec.wire
            # Steps are 0.5 s apart: a progress this late was sent after gangway had the cancel.
            if d == "in" and m.get("method") == "notifications/progress" and t > cancelled_at + 0.75
        ]
        check(not late, f"progress kept arriving for the cancelled request: {late}")
        echo = await call(session, "everything__echo", {"message": "still usable"})
        check(text_of(echo) == "Echo: still usable", f"echo after the cancel: {text_of(echo)!r}")


async def list_changed_reaches_the_client(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, rec):
        before = {t.name for t in await tools_of(session)}

        def changed() -> bool:
            return any(isinstance(n, types.ToolListChangedNotification) for n in rec.notifications)

        await rec.wait_for(changed, 5, "notifications/tools/list_changed from server-everything")
        after = {t.name for t in await tools_of(session)}
        check("everything__echo" in after and after == before, f"tools before {sorted(before)}, after {sorted(after)}")


async def two_instances_server_to_client_requests_route_right(ctx: Ctx) -> None:
    async with through_gangway(ctx) as (session, rec):
        names = {t.name for t in await tools_of(session)}
        for b in ("a", "b"):
            check(f"{b}__trigger-sampling-request" in names, f"{b}__trigger-sampling-request not in {sorted(names)}")

        both_asked = anyio.Event()

        async def gate() -> None:
            # Holds every answer until both backends' sampling requests are at the client, so
            # the two (whose backend ids are equal) are in flight through gangway together.
            if len(rec.sampling) >= 2:
                both_asked.set()
            with anyio.fail_after(STEP_TIMEOUT):
                await both_asked.wait()

        rec.sampling_gate = gate
        results: dict[str, str] = {}
        roots: dict[str, str] = {}

        async def sample(b: str) -> None:
            results[b] = text_of(await call(session, f"{b}__trigger-sampling-request", {"prompt": f"question from {b}"}))

        async def get_roots(b: str) -> None:
            roots[b] = text_of(await call(session, f"{b}__get-roots-list", {}))

        async with anyio.create_task_group() as tg:
            for b in ("a", "b"):
                tg.start_soon(sample, b)
                tg.start_soon(get_roots, b)
        for b, other in (("a", "b"), ("b", "a")):
            own = sampled_text(f"Resource trigger-sampling-request context: question from {b}")
            check(own in results[b], f"{b}'s tool result lacks its own answer {own!r}: {results[b]!r}")
            check(f"question from {other}" not in results[b], f"{b}'s tool result has {other}'s answer: {results[b]!r}")
            check(f"Current MCP Roots ({len(ROOTS)} total)" in roots[b], f"{b}'s roots: {roots[b]!r}")
        to_client = [m for m in rec.incoming() if m.get("method") == "sampling/createMessage"]
        ids = [m["id"] for m in to_client]
        check(len(ids) == 2 and ids[0] != ids[1], f"sampling requests reached the client with ids {ids}")


async def tasks_augmented_call_followed_to_result(ctx: Ctx) -> None:
    topic = "byte routers"
    async with through_gangway(ctx) as (session, rec):
        tools = {t.name: t for t in await tools_of(session)}
        tool = tools.get("everything__simulate-research-query")
        check(tool is not None, f"everything__simulate-research-query not in {sorted(tools)}")
        check(
            tool.execution is not None and tool.execution.task_support == "required",
            f"execution.taskSupport did not pass through: {dump(tool)}",
        )
        # The SDK (2.3.0) has no client API for tasks and validates a tools/call answer as a
        # CallToolResult, so the task-augmented call goes through its dispatcher directly.
        params = {"name": tool.name, "arguments": {"topic": topic}, "task": {"ttl": 60000}}
        with anyio.fail_after(STEP_TIMEOUT):
            created = await session._dispatcher.send_raw_request("tools/call", params, {"timeout": STEP_TIMEOUT})
        task = types.CreateTaskResult.model_validate(created).task
        check(task.status in ("working", "completed"), f"created task: {created}")
        status = task.status
        with anyio.fail_after(STEP_TIMEOUT):
            while status != "completed":
                await anyio.sleep(0.25)
                got = await session.send_request(
                    types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task.task_id)), types.GetTaskResult
                )
                check(got.task_id == task.task_id, f"tasks/get answered for another task: {got}")
                check(got.status in ("working", "completed"), f"task status {got.status}: {got}")
                status = got.status
            final = await session.send_request(
                types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task.task_id)),
                types.CallToolResult,
            )
        text = text_of(final)
        check(f"# Research Report: {topic}" in text, f"tasks/result: {text[:300]!r}")


def spawn_mark(env_text: str) -> str:
    """The GANGWAY_MARK_<instance>=<spawn> entry of a backend's environment (get-env): which
    of gangway's processes answered."""
    marks = {k: v for k, v in json.loads(env_text).items() if k.startswith("GANGWAY_MARK_")}
    check(len(marks) == 1, f"one gangway mark in the backend's environment: {marks}")
    return next(f"{k}={v}" for k, v in marks.items())


async def two_sessions_share_one_backend_and_hear_only_their_own(ctx: Ctx) -> None:
    """Over HTTP, two SDK sessions of one `gangway serve` at once: `everything` is shared (one
    process; answers and progress of concurrent calls reach the session that asked), `own` has
    `"scope": "session"` (a process per session; concurrent sampling requests reach the session
    whose call made them). A shared backend's request to a client names no request, so it is
    exact only while one session is calling it: the shared sampling calls take turns."""
    check(ctx.url is not None, "this scenario runs over http")
    async with through_gangway(ctx) as (one, rec_one), through_gangway(ctx) as (two, rec_two):
        sessions = {"one": (one, rec_one), "two": (two, rec_two)}
        shared = [spawn_mark(text_of(await call(s, "everything__get-env"))) for s, _ in sessions.values()]
        check(shared[0] == shared[1], f"the shared backend ran two processes: {shared}")
        own = [spawn_mark(text_of(await call(s, "own__get-env"))) for s, _ in sessions.values()]
        check(own[0] != own[1], f"the session-scoped backend served both sessions from one process: {own}")

        both_asked = anyio.Event()
        asked: list[str] = []

        async def gate() -> None:
            # Holds each session's sampling answer until both requests are out, so the two
            # session-scoped calls are in flight together.
            asked.append("x")
            if len(asked) >= 2:
                both_asked.set()
            with anyio.fail_after(STEP_TIMEOUT):
                await both_asked.wait()

        results: dict[str, str] = {}
        progress: dict[str, list[float]] = {"one": [], "two": []}

        async def sample(label: str) -> None:
            session = sessions[label][0]
            results[label] = text_of(await call(session, "own__trigger-sampling-request", {"prompt": f"asked by {label}"}))

        async def long(label: str) -> None:
            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress[label].append(p)

            args = {"duration": 0.6, "steps": 3}
            await call(sessions[label][0], "everything__trigger-long-running-operation", args, progress_callback=on_progress)

        rec_one.sampling_gate = gate
        rec_two.sampling_gate = gate
        async with anyio.create_task_group() as tg:
            for label in sessions:
                tg.start_soon(sample, label)
                tg.start_soon(long, label)
        rec_one.sampling_gate = rec_two.sampling_gate = None
        for label in sessions:
            shared_result = text_of(await call(sessions[label][0], "everything__trigger-sampling-request", {"prompt": f"shared, asked by {label}"}))
            results[f"shared {label}"] = shared_result
        for label, other in (("one", "two"), ("two", "one")):
            for key in (label, f"shared {label}"):
                check(f"asked by {label}" in results[key], f"{key}: the result lacks its own answer: {results[key]!r}")
                check(f"asked by {other}" not in results[key], f"{key}: the result has {other}'s answer: {results[key]!r}")
            check(progress[label] == [1, 2, 3], f"{label}'s progress: {progress[label]}")
        for label, (_, rec) in sessions.items():
            prompts = [m["params"]["messages"][0]["content"]["text"] for m in rec.incoming() if m.get("method") == "sampling/createMessage"]
            check(len(prompts) == 2 and all(f"asked by {label}" in p for p in prompts), f"[{label}] sampling requests: {prompts}")


SCENARIOS: dict[str, Callable[[Ctx], Any]] = {
    f.__name__: f
    for f in (
        tools_mode_lists_every_tool_of_both_prefixed,
        meta_mode_lists_use_tool_and_discover,
        echo_through_use_tool_and_tools_mode,
        long_running_progress_reaches_the_client,
        sampling_request_answered_by_client_callback,
        elicitation_round_trip,
        roots_reach_the_backend,
        structured_content_passes_through,
        resources_list_and_read,
        prompts_list_and_get,
        completion_for_prompt_argument,
        logging_reaches_the_client,
        cancellation_of_a_long_call,
        list_changed_reaches_the_client,
        two_instances_server_to_client_requests_route_right,
        tasks_augmented_call_followed_to_result,
        two_sessions_share_one_backend_and_hear_only_their_own,
    )
}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, which anyio task groups raise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


def print_wire(last: int | None) -> None:
    for rec in RECORDERS:
        print(f"--- messages on the wire of the {rec.label} session (in = from the server):", file=sys.stderr)
        start = rec.wire[0][0] if rec.wire else 0.0
        for t, direction, msg in rec.wire[-last if last else 0 :]:
            text = json.dumps(msg)
            text = text if len(text) <= 600 else text[:600] + "..."
            print(f"  {t - start:7.3f} {direction:>3} {text}", file=sys.stderr)


@asynccontextmanager
async def served(ctx: Ctx, path: str) -> AsyncIterator[None]:
    """Runs `gangway serve` on a free loopback port for the scenario, sets `ctx.url` to its
    `path` endpoint, and stops it (SIGTERM) at the end; its stderr goes to ours."""
    env = {k: os.environ[k] for k in ("PATH", "RUST_LOG", "RUST_BACKTRACE", "XDG_CACHE_HOME", "HOME") if k in os.environ}
    args = [ctx.gangway, "serve", "--config", ctx.config_path, "--listen", "127.0.0.1:0", "--log-level", "debug"]
    async with await anyio.open_process(args, env=env, stdin=None, stdout=None) as proc:
        assert proc.stderr is not None
        buffered = b""
        with anyio.fail_after(STEP_TIMEOUT):
            while b"/mcp" not in buffered:
                chunk = await proc.stderr.receive()
                buffered += chunk
        line = next(l for l in buffered.decode().splitlines() if "http://" in l and "/mcp" in l)
        base = line[line.index("http://") :].split()[0].removesuffix("/mcp")
        ctx.url = base + path
        sys.stderr.write(buffered.decode(errors="replace"))

        async def relay() -> None:
            async for chunk in proc.stderr:
                sys.stderr.write(chunk.decode(errors="replace"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(relay)
            try:
                yield
            finally:
                proc.terminate()
                with anyio.move_on_after(STEP_TIMEOUT):
                    await proc.wait()
                tg.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5) or argv[1] not in SCENARIOS or argv[4:] not in ([], ["stdio"], ["http"], ["sse"]):
        print(f"usage: {argv[0]} SCENARIO GANGWAY_BIN CONFIG_PATH [stdio|http|sse]\nscenarios: {', '.join(SCENARIOS)}")
        return 2
    scenario, gangway, config_path = argv[1:4]
    mode = argv[4] if len(argv) == 5 else "stdio"
    with open(config_path) as f:
        ctx = Ctx(gangway, config_path, json.load(f))

    async def run() -> None:
        with anyio.fail_after(SCENARIO_TIMEOUT):
            if mode == "stdio":
                await SCENARIOS[scenario](ctx)
                return
            async with served(ctx, "/mcp" if mode == "http" else "/sse"):
                await SCENARIOS[scenario](ctx)

    try:
        anyio.run(run)
    except BaseException as e:  # noqa: BLE001 - every failure is reported, none escapes
        for leaf in leaves(e):
            print(f"--- {type(leaf).__name__} in {scenario}:", file=sys.stderr)
            traceback.print_exception(leaf, file=sys.stderr)
        print_wire(40)
        reasons = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves(e))
        print(f"FAIL {scenario}: {reasons}")
        return 1
    if os.environ.get("GANGWAY_PEERS_WIRE"):
        print_wire(None)
    print(f"ok {scenario}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
