"""Drives `flow mcp-stdio` the way a desktop MCP host does: spawns it, lists the tools,
calls some, and prints one `RESULT <json>` line.

usage: stdio_client.py FLOW_BINARY JOIN_ADDR
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError


async def main() -> None:
    flow, join = sys.argv[1], sys.argv[2]
    params = StdioServerParameters(command=flow, args=["mcp-stdio", "--join", join], env={"FLOW_LOG": "warn"})
    out = {}
    async with Client(params) as c:
        out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        r = await c.call_tool("echo", {"text": "over stdio"})
        out["echo"] = r.content[0].text
        r = await c.call_tool("increment", {"id": "stdio-1"})
        out["increment"] = r.content[0].text
        try:
            await c.call_tool("echo", {"text": 42})
        except MCPError as e:
            out["bad_arguments"] = e.code
        r = await c.call_tool("flow_cluster_status", {})
        out["status_node"] = r.structured_content["node"]
        out["peers"] = [p["node"] for p in r.structured_content["cluster"]["peers"]]
    print("RESULT " + json.dumps(out), flush=True)


asyncio.run(main())
