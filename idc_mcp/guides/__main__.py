"""`python -m idc_mcp.guides --write-schema-reference`: regenerate references/metadata_schema.md."""

from idc_mcp.guides.resources import main

raise SystemExit(main())
