"""Deleting rows kept for a while only, oldest first, in bounded statements."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Model, QuerySet


def rows_older_delete(
    rows: QuerySet[Model], *, before: datetime, field: str = "created_at", batch: int, batches: int
) -> int:
    """Delete those of ``rows`` whose ``field`` is before ``before``, oldest first: at most
    ``batch`` rows per statement and ``batches`` statements (the next run takes the rest).
    How many rows of ``rows``' model went. Each statement is its own transaction; run twice
    at once, each row is deleted once. ``field`` wants an index."""
    label = rows.model._meta.label
    deleted = 0
    for _run in range(batches):
        oldest = rows.filter(**{f"{field}__lt": before}).order_by(field, "pk").values("pk")[:batch]
        _total, by_model = rows.model._default_manager.filter(pk__in=oldest).delete()
        count = by_model.get(label, 0)
        deleted += count
        if count < batch:
            break
    return deleted
