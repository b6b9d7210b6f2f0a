"""Serving the MCP server: stdio for one person, streamable HTTP for a team.

run.py        what `idc-mcp` does when it serves: the start line, clean stop, the HTTP options
http.py       the HTTP app: SDK bearer auth around the SDK transport, Host/Origin checks, /health
tokens.py     bearer tokens from a file or IDC_MCP_TOKENS, checked in constant time
calls.py      one middleware around every tool call: caller, limits, log line, audit record
limits.py     per-caller concurrency and calls-per-minute bookkeeping
audit.py      the rotated JSON-lines audit log
read_only.py  which tools write for the caller (from their annotations) and removing them

Imports the MCP SDK and idc_mcp.config only; the server object is handed in by cli.py.
"""
