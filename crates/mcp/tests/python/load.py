"""Concurrent tool calls through erlmcp-flow front doors, with the Python `mcp` client.

usage: load.py CALLS CONCURRENCY CALL_MS URL [URL...] [--pinned TOOL COUNT MS]

Opens one client session per URL and makes CALLS calls spread over them (both tools on
every URL), CONCURRENCY at a time: even call numbers call `lookup` (read-only, so retried by the router), odd ones
`increment` (not idempotent), each taking CALL_MS on the upstream. Each call has a unique
id. A call refused with "did not run"
errors (no replica, not committed, overloaded) is sent again, up to 50 times, after a
short pause: that is safe because nothing ran. With --pinned, COUNT calls of TOOL taking MS
each are started first, outside the concurrency bound (on the first URL), and reported
under "pinned". Prints `PROGRESS <done>` every 100 calls,
then one `RESULT <json>` line: per call its tool, id, outcome (`ok`, or the JSON-RPC error
code, or `exception: ...`), and the number of resends.
"""

import asyncio
import contextlib
import json
import sys
import time

from mcp import Client
from mcp.shared.exceptions import MCPError

DID_NOT_RUN = {-32011, -32012, -32014}  # no replica, overloaded, not committed


async def main() -> None:
    args = sys.argv[1:]
    pinned = None
    if "--pinned" in args:
        at = args.index("--pinned")
        pinned = (args[at + 1], int(args[at + 2]), int(args[at + 3]))
        args = args[:at]
    calls, concurrency, call_ms, urls = int(args[0]), int(args[1]), int(args[2]), args[3:]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(u, read_timeout_seconds=120)) for u in urls]
        await run(calls, concurrency, call_ms, clients, pinned)


async def outcome_of(client, tool: str, arguments: dict) -> tuple:
    """(outcome, resends) of one call, resending what certainly did not run."""
    resends = 0
    while True:
        try:
            r = await client.call_tool(tool, arguments)
            return ("ok" if not r.is_error else "tool_error"), resends
        except MCPError as e:
            if e.code in DID_NOT_RUN and resends < 50:
                resends += 1
                await asyncio.sleep(0.05)
                continue
            return e.code, resends
        except Exception as e:  # transport failures: the test reports them as lost
            return f"exception: {type(e).__name__}: {e}", resends


async def run(calls: int, concurrency: int, call_ms: int, clients: list, pinned) -> None:
    listed = []
    for c in clients:
        listed.append(sorted(t.name for t in (await c.list_tools()).tools))
    print("LISTED " + json.dumps(listed), flush=True)
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    results = [None] * calls
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        tool = "lookup" if i % 2 == 0 else "increment"
        ident = f"c{i}"
        client = clients[(i // 2) % len(clients)]
        async with gate:
            outcome, resends = await outcome_of(client, tool, {"id": ident, "ms": call_ms})
        results[i] = {"tool": tool, "id": ident, "outcome": outcome, "resends": resends}
        done += 1
        if done % 100 == 0:
            print(f"PROGRESS {done} {time.monotonic() - started:.3f}", flush=True)

    async def pin(i: int) -> dict:
        tool, _, ms = pinned
        outcome, resends = await outcome_of(clients[0], tool, {"id": f"p{i}", "ms": ms})
        took = round(time.monotonic() - started, 3)
        return {"tool": tool, "id": f"p{i}", "outcome": outcome, "resends": resends, "seconds": took}

    pins = [asyncio.ensure_future(pin(i)) for i in range(pinned[1])] if pinned else []
    await asyncio.gather(*(one(i) for i in range(calls)))
    print("RESULT " + json.dumps({"calls": results, "pinned": list(await asyncio.gather(*pins))}), flush=True)


asyncio.run(main())
