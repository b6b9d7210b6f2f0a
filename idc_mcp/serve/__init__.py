"""Serving the MCP server: stdio for one person, streamable HTTP for a team.

run.py        what `idc-mcp` does when it serves: the start line, clean stop, the HTTP options
http.py       the HTTP app: SDK bearer auth around the SDK transport, Host/Origin checks, /health
tokens.py     bearer tokens from a file or IDC_MCP_TOKENS, checked in constant time
calls.py      one middleware around every tool call: caller, limits, log line, audit record
limits.py     per-caller concurrency and calls-per-minute bookkeeping (refused calls count)
sessions.py   MCP sessions per caller, in front of the SDK's transport
refusals.py   refusals past 10 a minute per caller: counted in one summary, not logged one by one
audit.py      the rotated JSON-lines audit log, every text field cut
log_text.py   caller text in log lines: escaped and cut (the formatter of every log record)
read_only.py  which tools write for the caller (from their annotations) and removing them

Imports the MCP SDK and idc_mcp.config only; the server object is handed in by cli.py.
"""
