"""Per-call overhead of an MCP tool versus a Python tool, through the same tool executor.

    python benchmarks/mcp_bench.py              # 300 calls per row, after 30 warm-up calls
    python benchmarks/mcp_bench.py --calls 1000

Every row calls a tool named ``echo`` that returns its argument, through ``ToolExecutor.run`` (hooks,
JSON-schema validation of the arguments, timeout, result cap: exactly what a turn does):

- ``python``: a Python tool in this process;
- ``mcp stdio``: an ``MCPServer`` (the official SDK) started as our child over stdio;
- ``mcp http``: the same server over Streamable HTTP, in its own process (uvicorn on 127.0.0.1).

The ``SDK call`` rows skip the executor: ``McpConnection.call`` on the same session (the SDK's
``Client.call_tool`` plus error mapping), so the difference to the executor rows is what the tool loop
adds (hooks, validation, timeout, result conversion and cap). Connect times (start the server or reach
it, handshake, list tools) are printed too. Servers and clients run on this machine, so the figures
include both ends' CPU; compare rows from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from botframework.events import EventBus
from botframework.hooks import HookChain
from botframework.messages import ToolCall
from botframework.tools.base import Tool, ToolContext, tool
from botframework.tools.executor import ToolExecutor
from botframework.tools.mcp.config import McpServerConfig
from botframework.tools.mcp.connections import McpConnection
from botframework.tools.mcp.toolset import mcp_tool

SERVER = """
import sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("bench", log_level="WARNING")


@server.tool(description="Returns its argument.")
def echo(text: str) -> str:
    return text


if sys.argv[1] == "stdio":
    server.run()
else:
    import uvicorn

    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""

CTX = ToolContext(tenant="bench", conversation_id=1, turn_id="t", origin="bench")


@tool(
    name="echo",
    description="Returns its argument.",
    parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
)
async def python_echo(args: Any, ctx: ToolContext) -> str:
    return str(args["text"])


def executor() -> ToolExecutor:
    return ToolExecutor(
        tools=[],
        hooks=HookChain(),
        events=EventBus(),
        timeout_s=30,
        max_result_tokens=4000,
        count_tokens=lambda s: len(s) // 4,
    )


async def timed(calls: int, warm_up: int, once: Callable[[int], Awaitable[None]]) -> list[float]:
    for i in range(warm_up):
        await once(i)
    out: list[float] = []
    for i in range(calls):
        started = time.perf_counter()
        await once(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def through_executor(run: ToolExecutor, t: Tool) -> Callable[[int], Awaitable[None]]:
    async def once(i: int) -> None:
        [result] = await run.run([ToolCall(f"c{i}", "echo", f'{{"text": "hello {i}"}}')], CTX, tools=[t])
        assert result.text == f"hello {i}", result.text

    return once


def sdk_only(connection: McpConnection) -> Callable[[int], Awaitable[None]]:
    async def once(i: int) -> None:
        result = await connection.call("echo", {"text": f"hello {i}"})
        assert not result.is_error

    return once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the HTTP MCP server did not listen on {port}")


async def connect(name: str, config: McpServerConfig) -> tuple[McpConnection, float]:
    connection = McpConnection(name=name, config=config)
    started = time.perf_counter()
    await connection.ensure()
    return connection, (time.perf_counter() - started) * 1000


async def main(calls: int, warm_up: int) -> None:
    rows: list[tuple[str, str, list[float]]] = []
    connects: list[tuple[str, float]] = []
    run = executor()
    rows.append(("python", "executor", await timed(calls, warm_up, through_executor(run, python_echo))))

    stdio, took = await connect("bench_stdio", McpServerConfig(command=sys.executable, args=["-c", SERVER, "stdio"]))
    connects.append(("mcp stdio (start the process, handshake, list tools)", took))
    try:
        listing = await stdio.ensure()
        echo = mcp_tool(stdio, listing.tools[0], None)
        rows.append(("mcp stdio", "executor", await timed(calls, warm_up, through_executor(run, echo))))
        rows.append(("mcp stdio", "SDK call", await timed(calls, warm_up, sdk_only(stdio))))
    finally:
        await stdio.close()

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        "http",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for_port(port)
        http, took = await connect("bench_http", McpServerConfig(url=f"http://127.0.0.1:{port}/mcp"))
        connects.append(("mcp http (handshake, list tools; server already up)", took))
        try:
            listing = await http.ensure()
            echo = mcp_tool(http, listing.tools[0], None)
            rows.append(("mcp http", "executor", await timed(calls, warm_up, through_executor(run, echo))))
            rows.append(("mcp http", "SDK call", await timed(calls, warm_up, sdk_only(http))))
        finally:
            await http.close()
    finally:
        process.terminate()
        await process.wait()

    print(f"{calls} sequential calls per row after {warm_up} warm-up calls; {os.cpu_count()} CPU(s)\n")
    print(f"{'tool':<11} {'path':<9} {'median ms':>10} {'p95 ms':>8} {'mean ms':>8} {'calls/s':>8}")
    python_median = statistics.median(rows[0][2])
    for kind, path, samples in rows:
        ordered = sorted(samples)
        median = statistics.median(ordered)
        p95 = ordered[int(len(ordered) * 0.95) - 1]
        mean = statistics.fmean(ordered)
        print(f"{kind:<11} {path:<9} {median:>10.3f} {p95:>8.3f} {mean:>8.3f} {1000 / mean:>8.0f}")
    print()
    by = {(k, p): statistics.median(s) for k, p, s in rows}
    for kind in ("mcp stdio", "mcp http"):
        extra = by[(kind, "executor")] - python_median
        ours = by[(kind, "executor")] - by[(kind, "SDK call")]
        print(
            f"{kind}: +{extra:.3f} ms per call over a Python tool (median); executor and conversion over the "
            f"bare SDK call: {ours:+.3f} ms"
        )
    print()
    for label, ms in connects:
        print(f"connect, {label}: {ms:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warm-up", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.warm_up))
