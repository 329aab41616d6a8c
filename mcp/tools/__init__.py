"""The sidecar's MCP tools: the monitoring tools (monitoring_tools), the one explicit table that registers every
server's tools (catalog), and the wiring that serves them over stdio or mounts them over HTTP (runtime)."""
