"""SQL building blocks that give the same integers on PostgreSQL and SQLite.

Every instant is turned into integer microseconds since 1970 UTC
(``EpochMicros``), and every duration is a difference of such integers, so
no floating point enters a figure and both databases agree to the
microsecond:

* PostgreSQL: ``EXTRACT(EPOCH FROM x)`` is ``numeric`` (PostgreSQL 14 and
  later), exact to the microsecond, then cast to ``bigint``;
* SQLite: Django stores ``YYYY-MM-DD HH:MM:SS[.ffffff]`` text in UTC, so the
  value is ``strftime('%s')`` of the whole seconds plus the fraction digits.

Business time uses the calendar's open intervals materialised in
``reports_calendarinterval`` (``reports.calendar_intervals``): the business
time elapsed up to an instant ``t`` is

    B(t) = cum_before_us + min(max(t - start_us, 0), end_us - start_us)

of the last interval starting at or before ``t`` (0 before the first), and the
business duration of [s, e) is B(e) - B(s). Each B(t) is one index lookup on
(calendar_key, start_us).

The ``*_sql`` functions return SQL text for the aggregation queries of
``reports.metrics``; the expression classes wrap the same text for the ORM.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection as default_connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BigIntegerField, Expression, F, Func, Value
from django.db.models.sql.compiler import SQLCompiler

from reports.models import CalendarInterval

INTERVAL_TABLE = CalendarInterval._meta.db_table


def _vendor(connection: BaseDatabaseWrapper | None = None) -> str:
    vendor = (connection or default_connection).vendor
    if vendor not in ("postgresql", "sqlite"):
        raise ImproperlyConfigured(f"Reports run on PostgreSQL and SQLite, not {vendor}.")
    return vendor


def epoch_us_sql(expr: str, vendor: str | None = None) -> str:
    """Integer microseconds since 1970 UTC of a datetime column or parameter ``expr`` (NULL stays NULL).

    The SQL twin of ``servicedesk.core.epoch.epoch_us``, for ``vendor`` (by
    default the connection's); literal percent signs are doubled for the
    parameter style of Django's cursors.
    """
    if (vendor or _vendor()) == "postgresql":
        return f"(EXTRACT(EPOCH FROM {expr}) * 1000000)::bigint"
    # '%%' because the text is later formatted with the query's parameters. The whole
    # seconds from the text's first 19 characters: SQLite's own parsing keeps
    # milliseconds and would round .9995 and above up to the next second.
    return (
        f"(CAST(strftime('%%s', substr({expr}, 1, 19)) AS INTEGER) * 1000000"
        f" + CASE WHEN length({expr}) > 19 THEN CAST(substr({expr} || '000000', 21, 6) AS INTEGER) ELSE 0 END)"
    )


def greatest_sql(a: str, b: str, vendor: str) -> str:
    return f"GREATEST({a}, {b})" if vendor == "postgresql" else f"MAX({a}, {b})"


def least_sql(a: str, b: str, vendor: str) -> str:
    return f"LEAST({a}, {b})" if vendor == "postgresql" else f"MIN({a}, {b})"


def json_text_sql(expr: str, vendor: str) -> str:
    """The text of a JSON scalar column (``"open"`` -> ``open``, ``5`` -> ``5``, null -> NULL)."""
    return f"({expr} #>> '{{}}')" if vendor == "postgresql" else f"json_extract({expr}, '$')"


def json_key_text_sql(expr: str, key: str, vendor: str) -> str:
    """The text of the scalar under ``key`` of a JSON object column (``key`` is a trusted identifier)."""
    if not key.isidentifier():
        raise ValueError(f"not a plain key: {key!r}")
    return f"({expr} ->> '{key}')" if vendor == "postgresql" else f"json_extract({expr}, '$.{key}')"


def business_at_sql(t_us: str, key: str, vendor: str) -> str:
    """B(t): business microseconds from the start of the materialised span to ``t_us`` (NULL for NULL)."""
    clipped = least_sql(greatest_sql(f"{t_us} - ci.start_us", "0", vendor), "ci.end_us - ci.start_us", vendor)
    return (
        f"(CASE WHEN {t_us} IS NULL THEN NULL ELSE COALESCE(("
        f"SELECT ci.cum_before_us + {clipped} FROM {INTERVAL_TABLE} ci"
        f" WHERE ci.calendar_key = {key} AND ci.start_us <= {t_us}"
        f" ORDER BY ci.start_us DESC LIMIT 1), 0) END)"
    )


def business_between_sql(start_us: str, end_us: str, key: str, vendor: str) -> str:
    """Business microseconds of [start, end); 0 when end <= start, NULL when either is NULL."""
    return greatest_sql(
        f"{business_at_sql(end_us, key, vendor)} - {business_at_sql(start_us, key, vendor)}", "0", vendor
    )


class EpochMicros(Func):
    """Integer microseconds since 1970 UTC of a datetime expression; exact on both databases."""

    output_field = BigIntegerField()
    arity = 1

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        vendor = _vendor(connection)
        # The SQLite form names its argument three times.
        repeat = 1 if vendor == "postgresql" else 3
        return epoch_us_sql(f"({sql})", vendor), list(params) * repeat


class BusinessBetween(Expression):
    """Business microseconds of [start, end) on the materialised calendar ``calendar_key``.

    ``start`` and ``end`` are integer-microsecond expressions (``EpochMicros``);
    ``calendar_key`` a string expression. Usable in annotations and aggregates.
    """

    output_field = BigIntegerField()

    def __init__(self, start_us: Any, end_us: Any, calendar_key: Any) -> None:
        super().__init__(output_field=BigIntegerField())
        self.start_us, self.end_us, self.calendar_key = start_us, end_us, calendar_key

    def get_source_expressions(self) -> list[Any]:
        return [self.start_us, self.end_us, self.calendar_key]

    def set_source_expressions(self, exprs: Any) -> None:
        self.start_us, self.end_us, self.calendar_key = exprs

    def resolve_expression(self, *args: Any, **kwargs: Any) -> BusinessBetween:
        clone = self.copy()
        clone.is_summary = kwargs.get("summarize", False)
        clone.set_source_expressions(
            [expr.resolve_expression(*args, **kwargs) for expr in self.get_source_expressions()]
        )
        return clone

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        vendor = _vendor(connection)
        start_sql, start_params = compiler.compile(self.start_us)
        end_sql, end_params = compiler.compile(self.end_us)
        key_sql, key_params = compiler.compile(self.calendar_key)
        # Parameters in the order the placeholders appear in business_between_sql's text.
        at_end = _business_at_params(list(end_params), list(key_params), vendor)
        at_start = _business_at_params(list(start_params), list(key_params), vendor)
        sql = business_between_sql(f"({start_sql})", f"({end_sql})", key_sql, vendor)
        return sql, at_end + at_start


def _business_at_params(t_params: list[Any], key_params: list[Any], vendor: str) -> list[Any]:
    # business_at_sql names t in: IS NULL, the clipped difference (inside GREATEST/MAX), then key, then t.
    return t_params + t_params + key_params + t_params


def business_between(start: Any, end: Any, calendar_key: str) -> BusinessBetween:
    """Business duration of [start, end) in microseconds; ``start``/``end`` are datetime fields or expressions."""
    return BusinessBetween(EpochMicros(_expr(start)), EpochMicros(_expr(end)), Value(calendar_key))


def calendar_between(start: Any, end: Any) -> Expression:
    """Calendar duration end - start in microseconds (negative when end is earlier)."""
    return EpochMicros(_expr(end)) - EpochMicros(_expr(start))


def _expr(value: Any) -> Any:
    return F(value) if isinstance(value, str) else value
