"""Resource bounds on validated SQL: sizes DuckDB's memory limit and interrupt do not cover.

A few DuckDB functions build their results outside the buffer manager (so the memory limit does not
see them) and cannot be interrupted while they do: padding and formatting to a huge width, replacing
into a huge string, splitting or comparing very long strings, and lambdas run over long lists. A
single call can take gigabytes and minutes. Their size arguments are refused when unbounded, and
their inputs are checked at run time (a CASE that raises a clear error when a value is too long).
The longest text cell in the catalog is under 2,000 characters and its lists are short, so the
limits only bite on values built by aggregating many rows.
"""

from __future__ import annotations

import re

from sqlglot import exp


class SQLRejected(ValueError):
    """The SQL is not allowed. The message says which part and what to do instead."""


def function_label(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name)
    names = type(node).sql_names()
    return names[0].lower() if names else type(node).__name__


def literal_int(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and node.is_int:
        return int(node.name)
    return None


MAX_PAD_WIDTH = 100
MAX_FORMAT_WIDTH_DIGITS = 2
MAX_REPLACEMENT_GROWTH = 8
MAX_SUBJECT_CHARS = 10_000
MAX_SIMILARITY_CHARS = 2_048
MAX_LAMBDA_LIST = 2_000
MAX_AGGREGATED_LIST = 100_000

# function -> argument positions whose text length is checked at run time, and the limit.
_SPLITTERS = ("Split", "RegexpSplit", "RegexpExtractAll", "Replace", "RegexpReplace")
_SIMILARITY = ("Levenshtein", "JarowinklerSimilarity")
_ANON_SUBJECT = {
    name: ((0,), MAX_SUBJECT_CHARS)
    for name in "string_split str_split string_split_regex str_split_regex regexp_split_to_array "
    "regexp_extract_all regexp_replace replace".split()
}
_ANON_SUBJECT.update(
    {
        name: ((0, 1), MAX_SIMILARITY_CHARS)
        for name in "levenshtein damerau_levenshtein editdist3 jaro_similarity jaro_winkler_similarity "
        "hamming mismatches jaccard".split()
    }
)


def _length_guard(
    value: exp.Expression, limit: int, function: str, measure: str = "length"
) -> exp.Expression:
    """CASE WHEN length(value) > limit THEN error(...) ELSE value END (DuckDB evaluates CASE lazily)."""
    if measure == "len":
        message = (
            f"a list longer than {limit:,} elements was passed to or built by {function}(); "
            "filter rows with WHERE before aggregating, or count/aggregate instead of listing"
        )
    else:
        message = (
            f"a text value longer than {limit:,} characters was passed to {function}(); "
            "apply it to fewer or shorter values (e.g. before aggregating), or use substr()"
        )
    # DuckDB's length() counts characters of text and elements of lists.
    too_long = exp.GT(this=exp.Length(this=value.copy()), expression=exp.Literal.number(limit))
    fail = exp.Anonymous(this="error", expressions=[exp.Literal.string(message)])
    return exp.Case(ifs=[exp.If(this=too_long, true=fail)], default=value.copy())


def _literal_text(node: exp.Expression | None) -> str | None:
    return node.name if isinstance(node, exp.Literal) and node.is_string else None


def _check_growth(function: str, replacement: exp.Expression | None, search: exp.Expression | None) -> None:
    """A replacement may grow the text at most MAX_REPLACEMENT_GROWTH times, and must be a literal."""
    text = _literal_text(replacement)
    if replacement is not None and text is None:
        raise SQLRejected(f"{function}() needs a literal replacement string, e.g. {function}(x, '_', ' ').")
    searched = _literal_text(search) if function == "replace" else None
    grows = len(text or "") / max(1, len(searched)) if searched else 1 + len(text or "")
    if grows > MAX_REPLACEMENT_GROWTH + 1:
        raise SQLRejected(
            f"The replacement in {function}() is too long for what it replaces (it could grow the text "
            f"more than {MAX_REPLACEMENT_GROWTH}x). Use a shorter replacement."
        )


def _check_widths(node: exp.Func, label: str) -> None:
    if isinstance(node, exp.Pad):
        width = literal_int(node.expression)
        if width is None or width > MAX_PAD_WIDTH:
            raise SQLRejected(
                f"{label}() needs a literal width of at most {MAX_PAD_WIDTH}, e.g. lpad(x, 8, '0')."
            )
        return
    template = node.this if isinstance(node, exp.Format) else (node.expressions or [None])[0]
    text = _literal_text(template)
    if text is None:
        raise SQLRejected(f"{label}() needs a literal format string, e.g. {label}('%s: %d', name, n).")
    fields = text.replace("{{", "").replace("}}", "")
    if re.search(r"%[-+ #0-9.]*\*", text) or re.search(r"\{[^{}]*\{", fields):
        raise SQLRejected(
            f"The format string of {label}() takes a width or precision from an argument ('*' or a "
            "nested {}). Write the width into the format string, at most "
            f"{10**MAX_FORMAT_WIDTH_DIGITS - 1}."
        )
    # Digits inside the conversion specs only: '%08.3f' for printf, '{:>10}' for format.
    specs = re.findall(r"%[-+ #0-9.]*[a-zA-Z]", text) + re.findall(r"\{[^{}]*\}", fields)
    if any(len(digits) > MAX_FORMAT_WIDTH_DIGITS for spec in specs for digits in re.findall(r"\d+", spec)):
        raise SQLRejected(
            f"The format string of {label}() asks for a width or precision over "
            f"{10**MAX_FORMAT_WIDTH_DIGITS - 1}. Use a smaller one."
        )


def _check_lambda_body(body: exp.Expression, params: set[str], label: str) -> None:
    """A lambda body may use only its own parameters: a captured list would be copied per element."""
    if body.find(exp.Lambda, exp.Comprehension) is not None:
        raise SQLRejected(f"Lambdas inside lambdas are not allowed (in {label}()). Unnest one level first.")
    for column in body.find_all(exp.Column):
        root_name = column.parts[0].name.lower() if column.parts else column.name.lower()
        if root_name not in params:
            raise SQLRejected(
                f"The lambda in {label}() uses {column.sql(dialect='duckdb')}, which is not one of its "
                "parameters. A lambda may only use its parameters and literals; join or unnest instead."
            )


def _guard_lambda(node: exp.Expression) -> None:
    """Bound the list a lambda runs over: DuckDB does not count lambda results against its memory limit."""
    if isinstance(node, exp.Comprehension):
        params = {node.expression.name.lower()}
        position = node.args.get("position")
        if position is not None:
            params.add(position.name.lower())
        for key in ("this", "condition"):
            if node.args.get(key) is not None:
                _check_lambda_body(node.args[key], params, "a list comprehension")
        node.set(
            "iterator", _length_guard(node.args["iterator"], MAX_LAMBDA_LIST, "a list comprehension", "len")
        )
        return
    function = node.parent
    if isinstance(function, exp.Columns) or not isinstance(function, exp.Func):
        return  # COLUMNS(c -> ...) ranges over column names, not data
    label = function_label(function)
    _check_lambda_body(node.this, {e.name.lower() for e in node.expressions}, label)
    if isinstance(function, exp.Anonymous):
        args = list(function.expressions)
        if args and args[0] is not node:
            args[0] = _length_guard(args[0], MAX_LAMBDA_LIST, label, "len")
            function.set("expressions", args)
    elif function.this is not None and function.this is not node:
        function.set("this", _length_guard(function.this, MAX_LAMBDA_LIST, label, "len"))


def _guard_list_aggregate(node: exp.ArrayAgg) -> None:
    """Cap list()/array_agg() results: list functions on million-element lists are not interruptible."""
    top: exp.Expression = node
    while isinstance(top.parent, exp.Window | exp.Filter | exp.WithinGroup | exp.IgnoreNulls):
        top = top.parent
    top.replace(_length_guard(top, MAX_AGGREGATED_LIST, "list", "len"))


def bound_sizes(root: exp.Expression) -> exp.Expression:
    """Refuse unbounded size arguments and guard the inputs of costly functions (changes `root`)."""
    bounded = root
    for aggregate in list(bounded.find_all(exp.ArrayAgg)):
        _guard_list_aggregate(aggregate)
    for node in list(bounded.find_all(exp.Lambda, exp.Comprehension)):
        _guard_lambda(node)
    for node in list(bounded.find_all(exp.Func)):
        kind = type(node).__name__
        label = function_label(node)
        if isinstance(node, exp.Pad | exp.Format) or (isinstance(node, exp.Anonymous) and label == "printf"):
            _check_widths(node, label)
        if kind in ("Replace", "RegexpReplace"):
            _check_growth(label, node.args.get("replacement"), node.expression)
        elif isinstance(node, exp.Anonymous) and label in ("replace", "regexp_replace"):
            args = node.expressions
            _check_growth(label, args[2] if len(args) > 2 else None, args[1] if len(args) > 1 else None)
        if kind in _SPLITTERS:
            node.set("this", _length_guard(node.this, MAX_SUBJECT_CHARS, label))
        elif kind in _SIMILARITY:
            for key in ("this", "expression"):
                node.set(key, _length_guard(node.args[key], MAX_SIMILARITY_CHARS, label))
        elif isinstance(node, exp.Anonymous) and label in _ANON_SUBJECT:
            positions, limit = _ANON_SUBJECT[label]
            args = list(node.expressions)
            for i in positions:
                if i < len(args):
                    args[i] = _length_guard(args[i], limit, label)
            node.set("expressions", args)
    return bounded
