"""Whether the database and the Celery broker answer (liveness, and callers that
must answer "try again later" rather than work half-way)."""

from __future__ import annotations

from django.db import connection


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def broker_ok(*, timeout: int = 2) -> bool:
    """The broker accepts a connection (always true when tasks run in-process)."""
    # The project's Celery app is the current one (servicedesk/__init__.py creates
    # it first); naming it through Celery keeps core free of the project's modules.
    from celery import current_app as app

    if app.conf.task_always_eager:
        return True
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False
