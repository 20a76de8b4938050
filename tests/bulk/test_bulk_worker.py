"""Bulk jobs through the real Celery worker (tests/e2e/conftest.py): enqueued after commit through
Redis, run by the worker against the same PostgreSQL database, access checked when they run."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client

from servicedesk.desk import bulk
from servicedesk.desk.models import BulkJob, BulkJobItem
from servicedesk.tickets.models import Ticket, TicketEvent
from tests.e2e.conftest import wait_until
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desk(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "BULK_SYNC_MAX": 2}
    support = QueueFactory(slug="support", name="Support")
    billing = QueueFactory(slug="billing", name="Billing")
    ann = AgentFactory(username="ann", queues=[support, billing])
    customer = CustomerFactory(name="Alice", email="alice@example.com")
    tickets = [ticket_make(customer=customer, queue=support, subject=f"Case {n}") for n in range(4)]
    tickets += [ticket_make(customer=customer, queue=billing, subject=f"Bill {n}") for n in range(2)]
    return ann, billing, tickets


def runs_succeeded(worker) -> int:
    return sum(1 for line in worker.log.splitlines() if "desk.bulk_job_run[" in line and "succeeded" in line)


def finished(job_id: int) -> BulkJob | None:
    job = BulkJob.objects.get(pk=job_id)
    return job if not job.active else None


def test_all_matching_the_filter_is_changed_by_the_worker_once(celery_live, desk):
    ann, _billing, tickets = desk
    browser = Client()
    browser.force_login(ann)

    response = browser.post(
        "/desk/bulk/",
        {"action": "priority", "priority": "urgent", "scope": "matching", "filter": "status=new", "count": "6"},
    )

    assert response.status_code == 302
    job = wait_until(lambda: finished(BulkJob.objects.get().pk), timeout=60, what="the job to finish")
    assert (job.status, job.total, job.done, job.changed, job.seen_count) == ("done", 6, 6, 6, 6)
    assert set(Ticket.objects.values_list("priority", flat=True)) == {"urgent"}
    for ticket in tickets:
        [event] = TicketEvent.objects.filter(ticket=ticket, kind="priority")
        assert (event.actor_user_id, event.after) == (ann.pk, "urgent")
    # Delivered again (a second enqueue): nothing is applied twice.
    from servicedesk.desk.tasks import bulk_job_run_task

    before = runs_succeeded(celery_live)
    bulk_job_run_task.delay(job.pk)
    wait_until(lambda: runs_succeeded(celery_live) > before, timeout=30, what="the second run")
    assert TicketEvent.objects.filter(kind="priority").count() == 6
    assert BulkJobItem.objects.filter(job=job).count() == 6


def test_an_agent_removed_from_a_queue_before_the_worker_runs_changes_none_of_its_tickets(celery_live, desk):
    ann, billing, tickets = desk
    request = bulk.bulk_request_check(
        user=ann, data={"action": "status", "parameters": {"status": "pending"}, "ids": [t.pk for t in tickets]}
    )
    with transaction.atomic():
        job = bulk.bulk_submit(user=ann, request=request).job
        assert job is not None
        # Chosen while ann worked in billing; she leaves it before the job runs (its task goes on commit).
        billing.members.remove(ann)

    job = wait_until(lambda: finished(job.pk), timeout=60, what="the job to finish")
    assert (job.status, job.done, job.changed, job.skipped) == ("done", 6, 4, 2)
    statuses = {t.subject: Ticket.objects.get(pk=t.pk).status for t in tickets}
    assert statuses == {
        "Case 0": "pending",
        "Case 1": "pending",
        "Case 2": "pending",
        "Case 3": "pending",
        "Bill 0": "new",
        "Bill 1": "new",
    }
    assert not TicketEvent.objects.filter(ticket__queue=billing, kind="status").exists()
