"""The skill and references served as MCP resources, the generated schema reference, prompts."""
