"""A Python MCP server (the `mcp` SDK's MCPServer, on stdio) used as an upstream by the
erlmcp-flow tests.

Tools:
  echo(text)          read-only: returns text
  lookup(id, ms=0)    read-only: counts the execution, waits ms, returns "seen <id>"
  increment(id, ms=0) not idempotent: counts the execution, waits ms, returns id
  slow(ms)            idempotent: sleeps ms milliseconds
  whoami()            read-only: this process's pid and $UPSTREAM_NAME
  $EXTRA_TOOL(id, ms) not idempotent: counts, waits ms, returns its name (only with $EXTRA_TOOL)

Every execution of lookup and increment is one line `<tool> <id> <$UPSTREAM_NAME>` in
$COUNT_FILE (O_APPEND writes of one short line are atomic), so a test can count executions
across processes and restarts, and see where they ran.
"""

import asyncio
import os

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer(os.environ.get("UPSTREAM_NAME", "pyupstream"))
COUNT_FILE = os.environ.get("COUNT_FILE")


NAME = os.environ.get("UPSTREAM_NAME", "pyupstream")


def record(line: str) -> None:
    """Appends `<line> <upstream name>`: one line per execution."""
    line = f"{line} {NAME}"
    if COUNT_FILE:
        fd = os.open(COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def echo(text: str) -> str:
    """Returns its text."""
    return text


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def lookup(id: str, ms: int = 0) -> str:
    """Looks an id up (read-only; each execution is counted), taking ms milliseconds."""
    record(f"lookup {id}")
    await asyncio.sleep(ms / 1000)
    return f"seen {id}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=False, destructiveHint=False))
async def increment(id: str, ms: int = 0) -> str:
    """Counts one execution of id (not idempotent), then takes ms milliseconds to answer:
    a replica killed meanwhile has run it without answering."""
    record(f"increment {id}")
    await asyncio.sleep(ms / 1000)
    return id


@server.tool(annotations=ToolAnnotations(idempotentHint=True))
async def slow(ms: int) -> str:
    """Sleeps ms milliseconds."""
    await asyncio.sleep(ms / 1000)
    return f"slept {ms}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def whoami() -> dict:
    """This process."""
    return {"pid": os.getpid(), "name": os.environ.get("UPSTREAM_NAME", "pyupstream")}


EXTRA = os.environ.get("EXTRA_TOOL")
if EXTRA:

    @server.tool(name=EXTRA, annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=False))
    async def extra(id: str = "", ms: int = 0) -> str:
        """A tool only this upstream has (not idempotent: counts, then waits ms)."""
        record(f"{EXTRA} {id}")
        await asyncio.sleep(ms / 1000)
        return EXTRA


if __name__ == "__main__":
    server.run()
