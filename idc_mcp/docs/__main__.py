"""`python -m idc_mcp.docs --write-schema-reference`: regenerate references/metadata_schema.md."""

from idc_mcp.docs.resources import main

raise SystemExit(main())
