"""Primary keys handed out before the rows are inserted, one query per table and batch.

A batch of history inserts tickets, messages and events that point at each
other; knowing their ids up front lets one INSERT per table write them all,
with each ticket's reference (``reference_for(pk)``) already filled in. A
new ticket takes its id the same way, so it is inserted with its reference.

PostgreSQL: the table's own sequence, so concurrent writers never collide.
SQLite: writes are serialised (the project opens IMMEDIATE transactions), so
the ids above the largest one in use, or ever used (``sqlite_sequence``), are
free until this transaction commits. Call inside the transaction that inserts the rows.
"""

from __future__ import annotations

from django.db import NotSupportedError, connection
from django.db.models import Model


def ids_allocate(model: type[Model], count: int) -> list[int]:
    """``count`` unused primary keys of ``model``'s table, ascending."""
    if count <= 0:
        return []
    table = model._meta.db_table
    column = model._meta.pk.column
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, column, count],
            )
            return sorted(row[0] for row in cursor.fetchall())
        if connection.vendor == "sqlite":
            # Table and column names come from the model's meta, quoted.
            sql = "SELECT MAX(n) FROM (SELECT MAX({}) AS n FROM {} UNION ALL SELECT seq FROM sqlite_sequence WHERE name = %s)"
            cursor.execute(sql.format(quote(column), quote(table)), [table])
            start = (cursor.fetchone()[0] or 0) + 1
            return list(range(start, start + count))
    raise NotSupportedError(f"Ids are handed out on PostgreSQL and SQLite, not {connection.vendor}.")
