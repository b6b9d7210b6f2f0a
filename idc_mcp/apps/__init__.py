"""MCP Apps: interactive views the host shows in a sandboxed frame beside the chat.

`explorer` (plain functions: overview, series pages, narrowing) and `surface` (the `explore` tool, the
`ui://idc/explorer` resource and the app-only tools). The app's source is `src/` (Node.js is needed only
to change it); `explorer.html` is its build, committed so that users need no Node.js.
"""
