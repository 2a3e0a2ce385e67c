#!/usr/bin/env python3
"""Many MCP Python SDK sessions at once through a load balancer, then what one of them sees
when its gangway instance is gone. Driven by tests/scale/mod.rs.

Usage: python3 tests/scale/sessions.py URL SESSIONS

Needs the SDK on PYTHONPATH (`.peers/py`, installed by `.ci/run`). Speaks JSON lines on stdout:

1. Opens SESSIONS Streamable HTTP sessions to URL at once (each with its own HTTP client, so
   nothing but the Mcp-Session-Id header ties its requests together), calls the mock's `m__pid`
   three times and `m__echo` once in each, all concurrently; every call must succeed and the
   three pids of a session must agree (the session stayed on one instance). Prints
   `{"opened": [{"session": i, "sid": ID, "pid": PID}, ...]}`.
2. Waits for a line `continue` on stdin (the test stops an instance meanwhile), then calls
   `m__pid` once more in every session, all concurrently. A session whose call fails opens a
   new session (initialize again, as the specification tells a client after a 404) and calls
   `m__pid` and `m__echo` there. Prints `{"after": [{"session": i, "pid": PID} or
   {"session": i, "error": MESSAGE, "code": CODE, "statuses": [[METHOD, STATUS], ...],
   "reopened": {"sid": ID, "pid": PID}}, ...]}` (statuses: the HTTP answers the failed
   session's client got since the stop).

Every wait is bounded (STEP_TIMEOUT a request, SCENARIO_TIMEOUT the whole run). On failure it
prints `{"fail": REASON}` on stdout, the details on stderr, and exits 1.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

try:
    import anyio
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.exceptions import MCPError
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(json.dumps({"fail": f"the MCP Python SDK is not importable ({e}); run .ci/run, which installs it into .peers/py"}))
    sys.exit(1)

SCENARIO_TIMEOUT = 60.0
STEP_TIMEOUT = 15.0
CALLS = 3


class Failure(Exception):
    """An expectation did not hold."""


def check(cond: Any, message: str) -> None:
    if not cond:
        raise Failure(message)


def say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


class Client:
    """One session's HTTP client, recording the status of every answer it gets."""

    def __init__(self) -> None:
        self.http = create_mcp_http_client()
        self.http.event_hooks["response"].append(self.on_response)
        self.statuses: list[tuple[str, int]] = []
        self.sid: str | None = None

    async def on_response(self, response: httpx2.Response) -> None:
        self.statuses.append((response.request.method, response.status_code))
        sid = response.headers.get("mcp-session-id")
        if sid and self.sid is None:
            self.sid = sid


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def call(session: ClientSession, name: str, args: dict[str, Any] | None = None) -> str:
    with anyio.fail_after(STEP_TIMEOUT):
        result = await session.call_tool(name, args or {})
    check(not result.is_error, f"{name} answered isError: {text_of(result)!r}")
    return text_of(result)


async def pid_of(session: ClientSession) -> int:
    return int(await call(session, "m__pid"))


@asynccontextmanager
async def open_session(url: str) -> AsyncIterator[tuple[ClientSession, Client]]:
    """An initialized SDK session through an HTTP client of its own."""
    client = Client()
    async with (
        client.http,
        streamable_http_client(url, http_client=client.http) as (read, write),
        ClientSession(read, write, read_timeout_seconds=STEP_TIMEOUT) as session,
    ):
        with anyio.fail_after(STEP_TIMEOUT):
            await session.initialize()
        check(client.sid, "initialize was answered without an Mcp-Session-Id")
        yield session, client


async def exercise(session: ClientSession, label: str) -> int:
    """Calls m__pid CALLS times and m__echo once, concurrently; returns the one pid."""
    pids: list[int] = []

    async def one_pid() -> None:
        pids.append(await pid_of(session))

    async def echo() -> None:
        text = await call(session, "m__echo", {"text": f"hello from {label}"})
        check(f"hello from {label}" in text, f"{label}: m__echo answered {text!r}")

    async with anyio.create_task_group() as tg:
        for _ in range(CALLS):
            tg.start_soon(one_pid)
        tg.start_soon(echo)
    check(len(set(pids)) == 1, f"{label}: the calls of one session reached different processes: {pids}")
    return pids[0]


async def run(url: str, count: int) -> None:
    opened: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    all_open = anyio.Event()
    go = anyio.Event()
    all_done = anyio.Event()

    async def one(i: int) -> None:
        async with open_session(url) as (session, client):
            pid = await exercise(session, f"session {i}")
            opened.append({"session": i, "sid": client.sid, "pid": pid})
            if len(opened) == count:
                all_open.set()
            await go.wait()
            mark = len(client.statuses)
            try:
                after.append({"session": i, "pid": await pid_of(session)})
            except MCPError as e:
                entry: dict[str, Any] = {
                    "session": i,
                    "error": e.error.message,
                    "code": e.error.code,
                    "statuses": client.statuses[mark:],
                }
                # The session is gone: initialize a new one, as a client does after a 404.
                async with open_session(url) as (again, again_client):
                    entry["reopened"] = {"sid": again_client.sid, "pid": await exercise(again, f"session {i} again")}
                after.append(entry)
            if len(after) == count:
                all_done.set()

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
        await all_open.wait()
        say({"opened": sorted(opened, key=lambda s: s["session"])})
        line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        check(line.strip() == "continue", f"expected `continue` on stdin, got {line!r}")
        go.set()
        await all_done.wait()
        say({"after": sorted(after, key=lambda s: s["session"])})


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} URL SESSIONS", file=sys.stderr)
        return 2
    url, count = argv[1], int(argv[2])

    async def bounded() -> None:
        with anyio.fail_after(SCENARIO_TIMEOUT):
            await run(url, count)

    try:
        anyio.run(bounded)
    except BaseException as e:  # noqa: BLE001 - every failure is reported, none escapes
        for leaf in leaves(e):
            traceback.print_exception(leaf, file=sys.stderr)
        say({"fail": "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves(e))})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
