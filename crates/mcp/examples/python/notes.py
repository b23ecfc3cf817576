"""An MCP server with a side effect: `add_note` appends to a file, so it is NOT idempotent
and erlmcp-flow never retries it after a failure that may have run it; `list_notes` is
read-only and retried freely.

Run it under erlmcp-flow with `[[mcp.upstream]] command = "python3", args = ["notes.py"]`
and `env = { NOTES_FILE = "/tmp/notes.txt" }` (needs `pip install mcp==2.3.0`).
"""

import os

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("notes")
NOTES = os.environ.get("NOTES_FILE", "notes.txt")


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=False, destructiveHint=False))
def add_note(text: str) -> str:
    """Appends a note."""
    with open(NOTES, "a", encoding="utf-8") as f:
        f.write(text.replace("\n", " ") + "\n")
    return "noted"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def list_notes() -> list[str]:
    """All notes, oldest first."""
    try:
        with open(NOTES, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        return []


if __name__ == "__main__":
    server.run()
