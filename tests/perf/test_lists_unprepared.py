"""The lists of tickets are planned for their values: never run as prepared statements, which
PostgreSQL may plan once for any values (core/prepared.py, planned_for_values)."""

from __future__ import annotations

import pytest
from django.db import connection

from servicedesk.core.prepared import planned_for_values
from tests.api.conftest import client_for
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_inbox_the_counts_and_the_api_list_are_never_prepared(postgres_only, client, agent, queue, customer):
    agent_client = client
    agent_client.force_login(agent)
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 5  # preparing is on (settings)
    ticket_make(customer=customer, queue=queue, subject="Printer on fire")
    api = client_for(agent)
    for _ in range(12):
        assert agent_client.get("/desk/?tags=vip&q=printer").status_code == 200
        assert agent_client.get("/desk/views/counts/").status_code == 200
        assert api.get("/api/v1/tickets/?tags=vip&search=printer").status_code == 200

    prepared = prepared_statements()
    # What runs around the lists (the session, the signed-in user) is prepared, so preparing is at work ...
    assert any('FROM "django_session"' in statement for statement in prepared)
    # ... and none of the lists' statements: the ticket list, its count, its search, the views' counts.
    assert not [statement for statement in prepared if "tickets_ticket_tags" in statement]
    assert not [statement for statement in prepared if "tickets_search_document" in statement]
    assert not [statement for statement in prepared if 'FROM "tickets_ticket"' in statement]
    assert connection.connection.prepare_threshold == 5  # given back after each


def test_planned_for_values_gives_the_threshold_back_after_an_error(postgres_only):
    connection.ensure_connection()
    with pytest.raises(ZeroDivisionError), planned_for_values():
        assert connection.connection.prepare_threshold is None
        1 / 0  # noqa: B018
    assert connection.connection.prepare_threshold == 5
