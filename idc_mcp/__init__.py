"""idc-mcp: an MCP server for the NCI Imaging Data Commons."""

__version__ = "0.1.0"
