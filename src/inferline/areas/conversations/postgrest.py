"""PostgREST-style query parameters → SQLAlchemy expressions (SQLite and PostgreSQL).

Supported: `col=[not.]op.value` with eq, neq, gt, gte, lt, lte, like, ilike (`*` is `%`), in.(a,b),
is.(null|true|false); JSON keys as `metadata->key` / `metadata->>key` (chains allowed); `or=(…)` / `and=(…)` /
`not.or=(…)` with nesting; `order=a.desc,b.asc.nullslast`; `limit`; `offset`. Anything else is a
`FilterError` (400) naming the parameter, never a silently unfiltered list.

Bounds (a 400 naming the parameter past them): `or`/`and` nest at most `MAX_DEPTH` deep, one request holds at
most `MAX_CONDITIONS` parameters and `MAX_CONDITIONS` conditions in all, a value is at most `MAX_VALUE_LENGTH`
characters. `limit` and `offset` are integers from 0 to `MAX_INT`; anything else there is a `PagingError`
(422).

Dialect differences live in `_like` only: SQLite's LIKE ignores case, so a case-sensitive `like` uses GLOB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, false, not_, or_

from inferline.errors import BadRequest, ValidationFailed

Kind = Literal["text", "datetime"]
OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_ARROW = re.compile(r"->>?")
MAX_DEPTH = 16
MAX_CONDITIONS = 100
MAX_VALUE_LENGTH = 8192
MAX_INT = 2**31 - 1


class FilterError(BadRequest):
    """A query filter is malformed."""

    title = "Invalid filter"

    def __init__(self, detail: str, *, parameter: str) -> None:
        super().__init__(detail, parameter=parameter)


class PagingError(ValidationFailed):
    """`limit` or `offset` is not an integer in range."""

    def __init__(self, detail: str, *, parameter: str) -> None:
        super().__init__(detail, parameter=parameter)


@dataclass(frozen=True)
class Column:
    """A filterable field: its SQL expression and how values are parsed."""

    expr: ColumnElement[Any]
    kind: Kind = "text"


@dataclass
class Schema:
    """What a query may name: plain columns and, optionally, one JSON column addressed with `->`."""

    columns: dict[str, Column]
    json_name: str | None = None
    json_column: Any = None

    def resolve(self, name: str, parameter: str) -> Column:
        if name in self.columns:
            return self.columns[name]
        if self.json_name and name.startswith(self.json_name + "->"):
            keys = _ARROW.split(name[len(self.json_name) :])[1:]
            if keys and all(_KEY.match(k) for k in keys):
                path = keys[0] if len(keys) == 1 else tuple(keys)
                return Column(self.json_column[path].as_string(), "text")
            raise FilterError(
                f"Invalid JSON key in {name!r}: keys are letters, digits, '_' or '-'.", parameter=parameter
            )
        known = ", ".join([*self.columns, f"{self.json_name}-><key>"] if self.json_name else self.columns)
        raise FilterError(f"Unknown filter column {name!r}; filterable: {known}.", parameter=parameter)


@dataclass
class Query:
    """The parsed query: a WHERE clause, ORDER BY terms, limit and offset."""

    where: list[ColumnElement[bool]] = field(default_factory=list)
    order_by: list[ColumnElement[Any]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


def bounded(params: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parameters, refused (400 naming the first one past a bound) when there are more than
    `MAX_CONDITIONS` of them or a value is longer than `MAX_VALUE_LENGTH` characters."""
    items = list(params)
    if len(items) > MAX_CONDITIONS:
        raise FilterError(
            f"Too many query parameters ({len(items)}): at most {MAX_CONDITIONS}.",
            parameter=items[MAX_CONDITIONS][0],
        )
    for key, value in items:
        if len(value) > MAX_VALUE_LENGTH:
            raise FilterError(
                f"The value of {key} is {len(value)} characters long: at most {MAX_VALUE_LENGTH}.",
                parameter=key,
            )
    return items


def parse(params: Iterable[tuple[str, str]], schema: Schema, dialect: str) -> Query:
    """Parse query parameters (repeated keys allowed; they AND together)."""
    query = Query()
    budget = _Budget()
    for key, value in bounded(params):
        if key == "order":
            query.order_by.extend(_order(value, schema))
        elif key in ("limit", "offset"):
            number = _paging_int(value, key)
            if key == "limit":
                query.limit = number
            else:
                query.offset = number
        elif key in ("or", "and", "not.or", "not.and"):
            negate = key.startswith("not.")
            op = key.removeprefix("not.")
            if not (value.startswith("(") and value.endswith(")")):
                raise FilterError(
                    f"{key} must be a parenthesised list, e.g. {op}=(a.eq.1,b.gt.2).", parameter=key
                )
            expr = _logic(op, value[1:-1], schema, dialect, key, budget, depth=1)
            query.where.append(not_(expr) if negate else expr)
        elif key == "select":
            raise FilterError("Vertical filtering (select) is not supported.", parameter=key)
        else:
            budget.take(key)
            query.where.append(_condition(schema.resolve(key, key), value, dialect, key))
    return query


@dataclass
class _Budget:
    """Counts the conditions of one request against `MAX_CONDITIONS`."""

    used: int = 0

    def take(self, parameter: str) -> None:
        self.used += 1
        if self.used > MAX_CONDITIONS:
            raise FilterError(
                f"More than {MAX_CONDITIONS} filter conditions in one request.", parameter=parameter
            )


def condition(schema: Schema, name: str, spec: str, dialect: str, parameter: str) -> ColumnElement[bool]:
    """One `[not.]op.value` filter on field `name` (errors name `parameter`)."""
    return _condition(schema.resolve(name, parameter), spec, dialect, parameter)


def _paging_int(value: str, parameter: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= MAX_INT):
        raise PagingError(
            f"{parameter} must be an integer from 0 to {MAX_INT}, got {value[:40]!r}.", parameter=parameter
        )
    return int(value)


def _order(value: str, schema: Schema) -> list[ColumnElement[Any]]:
    terms = []
    for item in value.split(","):
        parts = item.strip().split(".")
        if not parts[0]:
            raise FilterError(f"Empty term in order={value!r}.", parameter="order")
        column = schema.resolve(parts[0], "order")
        direction, nulls = "asc", None
        for mod in parts[1:]:
            if mod in ("asc", "desc"):
                direction = mod
            elif mod in ("nullsfirst", "nullslast"):
                nulls = mod
            else:
                raise FilterError(
                    f"Unknown order modifier {mod!r}: use asc, desc, nullsfirst or nullslast.",
                    parameter="order",
                )
        term = column.expr.desc() if direction == "desc" else column.expr.asc()
        if nulls == "nullsfirst":
            term = term.nulls_first()
        elif nulls == "nullslast":
            term = term.nulls_last()
        terms.append(term)
    return terms


def split_top(text: str, parameter: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FilterError(f"Unbalanced ')' in {text!r}.", parameter=parameter)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if depth or quoted:
        raise FilterError(f"Unbalanced parenthesis or quote in {text!r}.", parameter=parameter)
    parts.append(text[start:])
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _logic(
    op: str, body: str, schema: Schema, dialect: str, parameter: str, budget: _Budget, depth: int
) -> ColumnElement[bool]:
    if depth > MAX_DEPTH:
        raise FilterError(f"{parameter} nests or/and more than {MAX_DEPTH} deep.", parameter=parameter)
    items = [item.strip() for item in split_top(body, parameter)]
    if not all(items):
        raise FilterError(f"Empty condition in {op}=({body}).", parameter=parameter)
    exprs = []
    for item in items:
        negate = item.startswith("not.")
        inner = item.removeprefix("not.")
        nested = re.match(r"^(or|and)\((.*)\)$", inner, re.S)
        if nested:
            expr = _logic(nested.group(1), nested.group(2), schema, dialect, parameter, budget, depth + 1)
            exprs.append(not_(expr) if negate else expr)
            continue
        name, dot, rest = item.partition(".")
        if not dot:
            raise FilterError(f"Condition {item!r} is not column.operator.value.", parameter=parameter)
        budget.take(parameter)
        exprs.append(_condition(schema.resolve(name, parameter), rest, dialect, parameter, in_tree=True))
    return or_(*exprs) if op == "or" else and_(*exprs)


def _condition(
    column: Column, spec: str, dialect: str, parameter: str, *, in_tree: bool = False
) -> ColumnElement[bool]:
    negate = spec.startswith("not.")
    op, dot, raw = spec.removeprefix("not.").partition(".")
    if op not in OPERATORS or not dot:
        raise FilterError(
            f"Invalid filter {spec!r}: expected [not.]<operator>.<value> with operator one of "
            f"{', '.join(OPERATORS)}.",
            parameter=parameter,
        )
    value = _unquote(raw) if in_tree else raw
    expr = _operator(column, op, value, dialect, parameter)
    return not_(expr) if negate else expr


def _operator(column: Column, op: str, raw: str, dialect: str, parameter: str) -> ColumnElement[bool]:
    expr = column.expr
    if op == "is":
        word = raw.lower()
        if word in ("null", "unknown"):
            return expr.is_(None)
        if word in ("true", "false") and column.kind == "text":
            return expr == word
        raise FilterError(
            f"is.{raw} is not supported here: use is.null or is.true/false.", parameter=parameter
        )
    if op == "in":
        if not (raw.startswith("(") and raw.endswith(")")):
            raise FilterError(
                f"in needs a parenthesised list, e.g. in.(a,b), got {raw!r}.", parameter=parameter
            )
        body = raw[1:-1]
        items = [_unquote(v.strip()) for v in split_top(body, parameter)] if body else []
        values = [_typed(column, v, parameter) for v in items]
        return expr.in_(values) if values else false()
    if op in ("like", "ilike"):
        if column.kind != "text":
            raise FilterError(f"{op} applies to text fields only.", parameter=parameter)
        return _like(expr, raw.replace("*", "%"), case_sensitive=op == "like", dialect=dialect)
    value = _typed(column, raw, parameter)
    compare: dict[str, Callable[[Any], ColumnElement[bool]]] = {
        "eq": expr.__eq__,
        "neq": expr.__ne__,
        "gt": expr.__gt__,
        "gte": expr.__ge__,
        "lt": expr.__lt__,
        "lte": expr.__le__,
    }
    return compare[op](value)


def _typed(column: Column, raw: str, parameter: str) -> Any:
    if column.kind == "datetime":
        return parse_datetime(raw, parameter)
    return raw


def parse_datetime(raw: str, parameter: str) -> datetime:
    """An ISO date or date-time (`Z` allowed); naive values are UTC."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            d = date.fromisoformat(raw)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        value = datetime.fromisoformat(raw.replace(" ", "+") if "T" in raw else raw)
    except ValueError:
        raise FilterError(f"{raw!r} is not an ISO 8601 date or date-time.", parameter=parameter) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _like(
    expr: ColumnElement[Any], pattern: str, *, case_sensitive: bool, dialect: str
) -> ColumnElement[bool]:
    """LIKE with PostgreSQL semantics on every backend (`\\` escapes; `like` is case-sensitive)."""
    if not case_sensitive:
        return expr.ilike(pattern, escape="\\")
    if dialect != "sqlite":
        return expr.like(pattern, escape="\\")
    return expr.op("GLOB")(_glob(pattern))


def _glob(pattern: str) -> str:
    """A LIKE pattern as an SQLite GLOB pattern."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            literal = pattern[i]
            out.append(f"[{literal}]" if literal in "*?[" else literal)
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


__all__ = [
    "Column",
    "FilterError",
    "PagingError",
    "Query",
    "Schema",
    "bounded",
    "condition",
    "parse",
    "parse_datetime",
    "split_top",
]
