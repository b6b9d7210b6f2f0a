"""One statement, read-only, within size caps: the checks every SQL guard makes, whatever the dialect.

Both validators (`sql.guard` for the local DuckDB catalog, `bigquery.guard` for IDC's BigQuery datasets)
parse with these functions and walk the tree with `check_nodes`; each supplies its dialect, its error
type, its forbidden nodes and its function allowlist (`Rules`). What they allow differs; how a caller's
text is reduced to one bounded SELECT tree does not.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

MAX_SQL_CHARS = 20_000
MAX_NESTING = 40
MAX_NODES = 5_000

_OPENERS = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSERS = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}


@dataclass(frozen=True)
class Rules:
    """What one validator refuses, and how its messages name its SQL."""

    dialect: str  # sqlglot dialect name
    error: type[Exception]  # raised with the message
    empty_message: str  # the reply to empty SQL, with an example
    parse_label: str  # after "could not be parsed", e.g. " as BigQuery Standard SQL"
    parse_hint: str  # what to check after a parse error
    extra_statements_hint: str  # what to do with more than one statement
    set_operations: str  # the set operations that are fine, e.g. "UNION/INTERSECT/EXCEPT"
    forbidden: tuple[type[exp.Expression], ...]  # statement and clause nodes never allowed
    friendly: dict[str, str]  # how a forbidden node is named in the message (default: its class)
    check_function: Callable[[exp.Func], None]  # raises `error` for a function outside the allowlist
    _dialect: Dialect = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_dialect", Dialect.get_or_raise(self.dialect))


def forbidden_nodes(names: str) -> tuple[type[exp.Expression], ...]:
    """The sqlglot node classes named (space-separated), skipping names this sqlglot does not have."""
    return tuple(getattr(exp, name) for name in names.split() if hasattr(exp, name))


def bracket_depth(tokens: list[Token]) -> int:
    """Deepest nesting of (), [] and {} outside strings and comments (checked before the recursive parser)."""
    depth = best = 0
    for token in tokens:
        if token.token_type in _OPENERS:
            depth += 1
            best = max(best, depth)
        elif token.token_type in _CLOSERS:
            depth -= 1
    return best


def tree_depth(node: exp.Expression) -> int:
    best = 0
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        best = max(best, depth)
        stack.extend((child, depth + 1) for child in current.iter_expressions())
    return best


def parse_one(sql: str, rules: Rules) -> exp.Expression:
    """Parse exactly one statement, refusing anything else with a clear reason."""
    fail = rules.error
    if not isinstance(sql, str) or not sql.strip():
        raise fail(rules.empty_message)
    if len(sql) > MAX_SQL_CHARS:
        raise fail(
            f"The SQL is {len(sql):,} characters; the limit is {MAX_SQL_CHARS:,}. "
            "Write a shorter query: filter with joins or IN (subquery) instead of long literal lists."
        )
    if "\x00" in sql:
        raise fail("The SQL contains a NUL character. Send plain text SQL.")
    try:
        tokens = rules._dialect.tokenize(sql)
    except TokenError as exc:
        message = str(exc).splitlines()[0][:300]
        raise fail(f"The SQL could not be read: {message}. Check quotes and comments.") from exc
    if bracket_depth(tokens) > MAX_NESTING:
        raise fail(f"The SQL nests brackets more than {MAX_NESTING} deep. Flatten it, e.g. with WITH (CTEs).")
    try:
        statements = [s for s in rules._dialect.parser().parse(tokens, sql) if s is not None]
    except (ParseError, TokenError) as exc:
        if (misspelled := misspelled_keyword(tokens)) is not None:
            raise fail(misspelled) from exc
        message = _parser_message(str(exc).splitlines()[0][:300])
        raise fail(
            f"The SQL could not be parsed{rules.parse_label}: {message.rstrip('.')}. {rules.parse_hint}"
        ) from exc
    except RecursionError as exc:
        raise fail("The SQL is nested too deeply to parse. Flatten it, e.g. with WITH (CTEs).") from exc
    if len(statements) != 1:
        raise fail(
            f"Send exactly one statement; this text has {len(statements)}. {rules.extra_statements_hint}"
        )
    return statements[0]


# Words that start a read-only statement, and the clause keywords a query is written with.
STARTS = ("SELECT", "WITH")
_CLAUSES = ("FROM", "WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "JOIN", "UNION", "DISTINCT", "BETWEEN")


def misspelled_keyword(tokens: list[Token]) -> str | None:
    """The reply to a statement that does not start with SELECT or WITH (`SELEC * FROM index`), or
    whose clause keyword is misspelled (`FORM`): what to write, not the parser's internals."""
    if not tokens:
        return None
    first = tokens[0]
    if first.token_type == TokenType.VAR:
        near = difflib.get_close_matches(first.text.upper(), STARTS, n=1, cutoff=0.6)
        meant = f" Did you mean {near[0]}?" if near else ""
        return f"Statements start with SELECT or WITH; this one starts with {first.text!r}.{meant}"
    for token in tokens[1:]:
        if token.token_type != TokenType.VAR or len(token.text) < 4 or token.text.isdigit():
            continue
        near = difflib.get_close_matches(token.text.upper(), _CLAUSES, n=1, cutoff=0.75)
        if near:
            return (
                f"{token.text!r} (line {token.line}) is not a SQL keyword: did you mean {near[0]}? "
                "Fix it and run the query again."
            )
    return None


def _parser_message(message: str) -> str:
    """sqlglot's text without its internal class names: "Required keyword: 'expression' missing for
    <class 'sqlglot.expressions.core.Mul'>" -> "an operand is missing after '*'"."""
    missing = re.match(r"Required keyword: '\w+' missing for <class '[\w.]*\.(\w+)'>\.?(.*)", message)
    if missing:
        return f"an operand of {missing.group(1).upper()} is missing.{missing.group(2)}"
    return re.sub(r"<class '[\w.]*\.(\w+)'>", r"\1", message)


def read_only_root(tree: exp.Expression, rules: Rules) -> exp.Expression:
    """The SELECT or set operation at the top (a bare parenthesized query is unwrapped), walked and checked:
    nesting depth, node count, forbidden nodes, WITH RECURSIVE, and every function against the allowlist."""
    root = tree.this if isinstance(tree, exp.Subquery) and not tree.alias else tree
    if not isinstance(root, exp.Select | exp.SetOperation):
        kind = "a bare name" if isinstance(root, exp.Column) else type(root).__name__.upper()
        raise rules.error(
            f"Only read-only SELECT queries are allowed; this statement is {kind}. "
            f"Write a SELECT (WITH ... SELECT and {rules.set_operations} are fine)."
        )
    if tree_depth(root) > 4 * MAX_NESTING:
        raise rules.error("The query is nested too deeply. Flatten it with WITH (CTEs).")
    node_count = 0
    for node in root.walk():
        node_count += 1
        if node_count > MAX_NODES:
            raise rules.error(
                f"The query has more than {MAX_NODES:,} syntax nodes. Split it or use shorter lists."
            )
        if isinstance(node, rules.forbidden):
            name = type(node).__name__
            raise rules.error(
                f"{rules.friendly.get(name, name.upper())} is not allowed: only read-only SELECT queries "
                "run here."
            )
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise rules.error("WITH RECURSIVE is not allowed. Use a plain WITH or joins instead.")
        if isinstance(node, exp.Func) and not isinstance(node, exp.Binary | exp.Connector):
            rules.check_function(node)
    return root
