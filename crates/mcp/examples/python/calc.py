"""A read-only MCP server: every tool is safe to retry on another replica.

Run it under erlmcp-flow with `[[mcp.upstream]] command = "python3", args = ["calc.py"]`
(needs `pip install mcp==2.3.0`).
"""

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("calc")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def add(a: float, b: float) -> float:
    """a + b"""
    return a + b


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def multiply(a: float, b: float) -> float:
    """a × b"""
    return a * b


if __name__ == "__main__":
    server.run()
