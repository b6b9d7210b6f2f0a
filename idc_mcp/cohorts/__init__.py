"""Cohorts that last: a saved, shareable, versioned list of series pinned to the versions it was made from.

`format` is the file (its JSON Schema is `cohort.schema.json` beside it), `store` the folder of cohort
files under the download root, `versions` where each saved version stands in the catalog's release (and
how a release's versions are found), `imports` what an IDC portal export becomes. The tools that save,
list, compare and import cohorts live one floor up (`tools/cohorts.py`), and `tools/selection.py`
turns a `cohort` argument into its members for every selection tool.
"""
