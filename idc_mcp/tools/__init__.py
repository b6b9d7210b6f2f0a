"""The tools' logic as plain functions (one module per tool family), under the MCP layer."""
