"""BMO plugin: external MCP servers as agent tools, and BMO as an MCP server (`bmo mcp serve`)."""
