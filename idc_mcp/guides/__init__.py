"""What the server teaches an assistant besides its tools: the skill and references served as MCP
resources, the generated schema reference, the prompts and the instructions (`surface`). Named apart from
the repository's docs/ folder, which holds the markdown for people."""
