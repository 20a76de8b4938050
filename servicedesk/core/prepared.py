"""Queries compiled to SQL once per connection and run again with new values.

Building a query's SQL in the ORM costs more than running it on a hot path
(the intake's identity look-up and ticket lock: 0.5 to 0.8 ms each against a
round trip of 0.1 ms; docs/performance.md, "Intake"). A ``PreparedQuery`` is
written as an ordinary QuerySet of named parameters; the first call on a
connection compiles it with a marker value in each parameter's place, and
every later call sends the same SQL with the caller's values put where the
markers were. Rows become model instances as the ORM makes them: the same
converters, ``select_related`` objects filled in, ``Model.from_db``.

Only plain ``str`` and ``int`` parameters compared as they are (``=``, no
transformation): a marker that does not reach the SQL parameters unchanged is
an error when the query is compiled, never a wrong result. With
PostgreSQL's prepared statements (SD_DB_PREPARE_THRESHOLD) the server plans
the SQL once per connection too.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, models
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=models.Model)

_markers = itertools.count(1)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[str | None, ...]  # per parameter: the name it takes the value of, or None (kept as compiled)
    compiler: SQLCompiler
    converters: dict[int, tuple[list[Any], Any]]  # per column: as SQLCompiler.get_converters
    model: type[models.Model] | None
    span: tuple[int, int]  # the model's own columns
    attnames: tuple[str, ...]
    populators: tuple[Any, ...]  # select_related objects, as ModelIterable fills them in


class PreparedQuery(Generic[M]):
    """``build(**parameters)`` returns the QuerySet; ``parameters`` names each parameter's type (``str`` or ``int``).

    ``first(**values)``: the first row as a model instance, or None (``build``
    orders and slices the query itself, as ``.first()`` would). ``exists(**values)``:
    whether the query has a row. A query that takes a row lock must run
    inside ``transaction.atomic``, as in the ORM.
    """

    def __init__(self, build: Callable[..., models.QuerySet[M]], **parameters: type) -> None:
        for name, kind in parameters.items():
            if kind not in (str, int):
                raise TypeError(f"Parameter {name!r}: only str and int parameters can be prepared.")
        self._build = build
        self._parameters = parameters
        self._local = threading.local()  # compiled per thread: a connection belongs to its thread

    def first(self, using: str = "default", **values: str | int) -> M | None:
        compiled = self._compiled(using, exists=False)
        rows = self._run(compiled, using, values)
        if not rows:
            return None
        return self._instance(compiled, using, rows[0])

    def exists(self, using: str = "default", **values: str | int) -> bool:
        return bool(self._run(self._compiled(using, exists=True), using, values))

    def _run(self, compiled: _Compiled, using: str, values: dict[str, str | int]) -> list[tuple[Any, ...]]:
        if set(values) != set(self._parameters):
            raise TypeError(f"Expected the parameters {sorted(self._parameters)}, got {sorted(values)}.")
        typed: dict[str, str | int] = {}
        for name, value in values.items():
            kind = self._parameters[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TypeError(f"Parameter {name!r} takes a {kind.__name__}, not {value!r}.")
            # A choices member (a str or int enum) as its value, as the ORM sends it.
            typed[name] = kind(value)
        params = [
            typed[slot] if slot is not None else value
            for slot, value in zip(compiled.slots, compiled.params, strict=True)
        ]
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            return list(cursor.fetchmany(1))

    def _instance(self, compiled: _Compiled, using: str, row: tuple[Any, ...]) -> M:
        # As django.db.models.query.ModelIterable builds its objects.
        converted = next(compiled.compiler.apply_converters([row], compiled.converters)) if compiled.converters else row
        start, end = compiled.span
        assert compiled.model is not None
        instance: M = compiled.model.from_db(using, compiled.attnames, converted[start:end])  # type: ignore[assignment]
        for populator in compiled.populators:
            populator.populate(converted, instance)
        return instance

    def _compiled(self, using: str, *, exists: bool) -> _Compiled:
        connection = connections[using]
        cache: dict[tuple[int, bool], tuple[Any, _Compiled]] = self._local.__dict__.setdefault("cache", {})
        key = (id(connection), exists)
        hit = cache.get(key)
        if hit is not None and hit[0] is connection:
            return hit[1]
        compiled = self._compile(using, exists=exists)
        cache[key] = (connection, compiled)
        return compiled

    def _compile(self, using: str, *, exists: bool) -> _Compiled:
        marker = next(_markers)
        markers: dict[str, str | int] = {
            name: f"\x1fprepared-{marker}-{name}\x1f" if kind is str else -(10**15) - marker * 1000 - index
            for index, (name, kind) in enumerate(self._parameters.items())
        }
        queryset = self._build(**markers)
        query = queryset.query.exists(limit=True) if exists else queryset.query
        compiler = query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        by_value = {value: name for name, value in markers.items()}
        slots = tuple(by_value.get(value) if isinstance(value, str | int) else None for value in params)
        missing = set(markers) - {slot for slot in slots if slot is not None}
        if missing or any(str(value) in sql for value in markers.values()):
            raise ValueError(f"The parameters {sorted(missing) or sorted(markers)} do not reach the SQL unchanged.")
        if exists:
            return _Compiled(sql, tuple(params), slots, compiler, {}, None, (0, 0), (), ())
        klass_info = compiler.klass_info
        assert klass_info is not None
        select = compiler.select
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        return _Compiled(
            sql=sql,
            params=tuple(params),
            slots=slots,
            compiler=compiler,
            converters=compiler.get_converters([column[0] for column in select[: compiler.col_count]]),
            model=klass_info["model"],
            span=(start, end),
            attnames=tuple(column[0].target.attname for column in select[start:end]),
            populators=tuple(get_related_populators(klass_info, select, using)),
        )


# --- One row's INSERT and UPDATE ---------------------------------------------------------------------------
#
# ``Model.save()`` builds its statement through the ORM's compiler on every
# call: on the chat line's path (a message, its event, the line, the ticket's
# and the conversation's counters) that was most of the line's CPU. These
# two helpers write the same row with SQL made once per connection and model,
# and hand the values over as ``save()`` prepares them (each field's
# ``pre_save`` and ``get_db_prep_save``). Whatever they do not cover goes
# through ``save()`` itself: another database than PostgreSQL, a model with
# parents, its own ``save()`` or ``pre_save``/``post_save`` receivers, a value
# that is an expression, a primary key other than an auto field.

_rows = threading.local()


@contextmanager
def planned_for_values(using: str = "default") -> Iterator[None]:
    """Statements run inside (a function, when used as a decorator) are sent unprepared, so
    PostgreSQL plans each for its values.

    A statement prepared on the server (SD_DB_PREPARE_THRESHOLD) is planned for
    its values five times and then, when one plan for any values looks no more
    costly, with that plan from then on: made for a typical user, a typical tag,
    a typical word. For the lists of tickets that is wrong by orders of
    magnitude (an agent's tag filter read every ticket of their queues: 270 ms
    instead of 35). The intake's short statements keep being prepared."""
    wrapper = connections[using]
    if wrapper.vendor != "postgresql":
        yield
        return
    wrapper.ensure_connection()
    raw = wrapper.connection
    before = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        # On the connection it was set on, even if it went back to the pool meanwhile.
        raw.prepare_threshold = before


def _row_sql(using: str, key: tuple[Any, ...], build: Callable[[Any], str]) -> str:
    connection = connections[using]
    cache: dict[tuple[Any, ...], tuple[Any, str]] = _rows.__dict__.setdefault("cache", {})
    full = (id(connection), *key)
    hit = cache.get(full)
    if hit is not None and hit[0] is connection:
        return hit[1]
    sql = build(connection)
    cache[full] = (connection, sql)
    return sql


def _row_plain(model: type[models.Model], using: str) -> bool:
    """Whether rows of ``model`` may skip ``save()``: see above."""
    from django.db.models.fields import AutoFieldMixin
    from django.db.models.signals import post_save, pre_save

    meta = model._meta
    return (
        connections[using].vendor == "postgresql"
        and not meta.parents
        and not meta.proxy
        and isinstance(meta.pk, AutoFieldMixin)
        and model.save is models.Model.save
        and not pre_save.has_listeners(model)
        and not post_save.has_listeners(model)
    )


def _row_values(obj: models.Model, fields: list[Any], connection: Any, *, add: bool) -> list[Any] | None:
    """The fields' values as ``save()`` sends them, or None when one is an expression (``save()`` compiles it)."""
    values = []
    for field in fields:
        value = field.pre_save(obj, add)
        if hasattr(value, "resolve_expression") or hasattr(field, "get_placeholder"):
            return None
        values.append(field.get_db_prep_save(value, connection))
    return values


def row_insert_values(obj: models.Model, using: str = "default") -> tuple[list[Any], list[Any]] | None:
    """The fields and values of ``obj``'s INSERT as ``row_insert`` sends them (``save()``'s),
    or None where only ``save()`` writes it (see above). For a caller that writes the row
    within a statement of its own (``channels_app/chat/loop_line.py``)."""
    model = type(obj)
    meta = model._meta
    if obj.pk is not None or not _row_plain(model, using) or meta.db_returning_fields != [meta.pk]:
        return None
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    obj._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    values = _row_values(obj, fields, connections[using], add=True)
    if values is None:
        return None
    return fields, values


def row_insert(obj: models.Model, using: str = "default") -> None:
    """Insert ``obj``, a new instance, as ``obj.save(force_insert=True)`` would (its id set on it)."""
    model = type(obj)
    meta = model._meta
    prepared = row_insert_values(obj, using)
    if prepared is None:
        obj.save(force_insert=True, using=using)
        return
    fields, values = prepared
    connection = connections[using]

    def build(connection: Any) -> str:
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        columns = ", ".join(quote(f.column) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        return f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING {table}.{quote(meta.pk.column)}"

    sql = _row_sql(using, (model, "insert"), build)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        (pk,) = cursor.fetchone()
    setattr(obj, meta.pk.attname, pk)
    obj._state.adding = False
    obj._state.db = using


def row_update(obj: models.Model, fields: list[str] | tuple[str, ...], using: str = "default") -> None:
    """Save ``fields`` of ``obj``, a stored instance, as ``obj.save(update_fields=fields)`` would.

    As there, DatabaseError when the row is gone.
    """
    from django.db import DatabaseError

    model = type(obj)
    meta = model._meta
    if not fields or obj.pk is None or meta.select_on_save or not _row_plain(model, using):
        obj.save(update_fields=fields, using=using)
        return
    names = frozenset(fields)
    targets = [
        f
        for f in meta.local_concrete_fields
        if not f.generated and not f.primary_key and (f.name in names or f.attname in names)
    ]
    if len(targets) != len(names):
        # A name that is no column of this model: save() says which.
        obj.save(update_fields=fields, using=using)
        return
    obj._prepare_related_fields_for_save(operation_name="save", fields=targets)  # type: ignore[attr-defined]
    connection = connections[using]
    values = _row_values(obj, targets, connection, add=False)
    if values is None:
        obj.save(update_fields=fields, using=using)
        return
    values.append(meta.pk.get_db_prep_value(obj.pk, connection))

    def build(connection: Any) -> str:
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in targets)
        return f"UPDATE {table} SET {assignments} WHERE {table}.{quote(meta.pk.column)} = %s"

    sql = _row_sql(using, (model, "update", tuple(f.attname for f in targets)), build)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if cursor.rowcount < 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")
    obj._state.db = using
