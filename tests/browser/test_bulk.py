"""Bulk actions of the inbox in Chromium (docs/inbox.md, "Bulk actions"): a few ticked rows
changed in the request, and all the tickets of a filter changed by the real Celery worker
(tests/e2e/conftest.py) while the page follows the job's progress to its summary."""

from __future__ import annotations

import pytest
from django.db import transaction

from servicedesk.desk import bulk
from servicedesk.desk.inbox import PAGE_SIZE
from servicedesk.desk.models import BulkJob, BulkJobItem
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import Ticket, TicketEvent
from tests.browser.test_reports import collect_errors, sign_in
from tests.e2e.conftest import (  # noqa: F401 (fixtures: a real worker on Redis, PostgreSQL)
    _real_services_required,
    celery_live,
    celery_worker,
    e2e_redis_url,
    real_services,
    smtp_server,
)
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def text(page, selector: str) -> str:
    return page.inner_text(selector).strip()


def row_texts(page, selector: str) -> dict[str, str]:
    """Each inbox row's reference -> the text of ``selector`` in it."""
    return page.eval_on_selector_all(
        "tr[data-row]",
        "(rows, selector) => Object.fromEntries(rows.map(row => "
        "[row.dataset.reference, (row.querySelector(selector) || {textContent: ''}).textContent.trim()]))",
        selector,
    )


def test_ticked_rows_change_at_once_and_all_matching_changes_through_the_worker_with_progress(
    browser,
    live_server,
    celery_live,  # noqa: F811 (the fixture imported above)
):
    support = QueueFactory(slug="support", name="Support")
    billing = QueueFactory(slug="billing", name="Billing")
    ann = AgentFactory(username="ann", display_name="Ann Agent", queues=[support], password="ann-secret-42")
    alice = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    # More than the request changes at once, all on the inbox's first page.
    size = bulk.sync_max() + 4
    assert size <= PAGE_SIZE, "the tickets of the filter fit on one page of the inbox"
    tickets = [ticket_make(customer=alice, queue=support, subject=f"Case {n:02d}") for n in range(size)]
    # Same customer and status, in a queue ann does not work in: in no selection of hers.
    elsewhere = ticket_make(customer=alice, queue=billing, subject="Billing dispute")

    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "ann", "ann-secret-42", then="/desk/")
    assert sorted(row_texts(page, ".ticket-link")) == sorted(t.reference for t in tickets)
    assert text(page, "#inbox-results .result-count") == f"{size} tickets"
    assert text(page, "#bulk-matching-label") == f"All {size} tickets matching this filter"

    # --- A few ticked rows: changed in the request, the summary shown at once. ---
    few = tickets[:3]
    for ticket in few:
        page.check(f"#bulk-select-{ticket.pk}")
    assert text(page, "#bulk-selected-count") == "(3)"
    assert page.is_checked("#bulk-scope-selected")
    selected = page.eval_on_selector_all("tr[data-row].bulk-selected", "rows => rows.map(r => r.dataset.reference)")
    assert sorted(selected) == sorted(t.reference for t in few)
    page.select_option("#bulk-action", "tags")
    assert page.is_visible("#bulk-tags-add") and page.is_hidden("#bulk-status")
    page.fill("#bulk-tags-add", "VIP")
    with page.expect_navigation():
        page.click("#bulk-apply")
    assert page.url == f"{live_server.url}/desk/"
    assert text(page, ".flash") == "Done: 3 tickets changed, 0 already so, 0 refused, 0 skipped (no longer visible)."
    assert BulkJob.objects.count() == 0
    assert page.locator("#bulk-jobs .bulk-job").count() == 0
    tags_shown = row_texts(page, ".badge.tag")
    assert {ref: tags for ref, tags in tags_shown.items() if tags} == {t.reference: "vip" for t in few}
    for ticket in tickets:
        events = list(TicketEvent.objects.filter(ticket=ticket, kind="tags").values_list("actor_user", "after"))
        assert events == ([(ann.pk, ["vip"])] if ticket in few else [])
        assert list(Ticket.objects.get(pk=ticket.pk).tags.values_list("name", flat=True)) == (
            ["vip"] if ticket in few else []
        )

    # --- All matching the filter: a job run by the worker, its progress followed by the page. ---
    last = max(tickets, key=lambda t: t.pk)
    with transaction.atomic():
        # The worker goes in id order: holding the last ticket's row stops it there, so the page
        # must show the job part done and then follow it to its end.
        ticket_lock(last.pk)
        page.check(f"#bulk-select-{tickets[5].pk}")
        page.check(f"#bulk-select-{tickets[6].pk}")
        assert text(page, "#bulk-selected-count") == "(2)"
        page.check("#bulk-select-matching")
        assert page.is_checked("#bulk-select-matching") and not page.is_checked("#bulk-scope-selected")
        page.select_option("#bulk-action", "status")
        assert page.is_visible("#bulk-status") and page.is_hidden("#bulk-tags-add")
        page.select_option("#bulk-status", "on_hold")
        with page.expect_navigation():
            page.click("#bulk-apply")
        assert text(page, ".flash") == (
            "The change was started for the tickets of this filter; its progress is shown below."
        )
        job = BulkJob.objects.get()
        assert (job.owner_id, job.action, job.parameters, job.seen_count, job.ids) == (
            ann.pk,
            "status",
            {"status": "on_hold"},
            size,
            None,
        )
        box = f"#bulk-job-{job.pk}"
        progress = f"{box}-progress"
        assert page.is_visible(progress)
        assert text(page, f"{box} .bulk-job-head strong") == "Set the status"
        page.wait_for_function(
            "([selector, expected]) => document.querySelector(selector).textContent.trim() === expected",
            arg=[f"{box}-figures", f"{size - 1} of {size} processed: {size - 1} changed, 0 refused, 0 skipped."],
            timeout=30_000,
        )
        assert text(page, f"{box}-status") == "Running"
        assert page.get_attribute(box, "data-active") == "1"
        assert page.eval_on_selector(progress, "p => [p.value, p.max]") == [size - 1, size]
        assert page.is_visible(f"{box}-cancel")
        assert Ticket.objects.get(pk=last.pk).status == "new"

    # The row is free: the worker finishes, the page's poll sees it and reads the panel again.
    page.wait_for_function(
        "([selector, expected]) => { const e = document.querySelector(selector);"
        " return e !== null && e.textContent.trim() === expected; }",
        arg=[f"{box}-figures", f"{size} of {size} processed: {size} changed, 0 refused, 0 skipped."],
        timeout=30_000,
    )
    page.wait_for_selector(f"{box}[data-active='0']")
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr[data-row] .badge[class*=status-]')]"
        ".every(badge => badge.textContent.trim() === 'On hold')"
    )
    assert text(page, f"{box}-status") == "Done"
    assert page.eval_on_selector(progress, "p => [p.value, p.max]") == [size, size]
    assert page.locator(f"{box}-cancel").count() == 0
    assert set(row_texts(page, ".badge[class*=status-]").values()) == {"On hold"}
    assert sorted(row_texts(page, ".ticket-link")) == sorted(t.reference for t in tickets)

    job.refresh_from_db()
    assert (job.status, job.total, job.done, job.changed, job.failed, job.skipped) == ("done", size, size, size, 0, 0)
    assert {key: job.result[key] for key in ("total", "changed", "unchanged", "failed", "skipped")} == {
        "total": size,
        "changed": size,
        "unchanged": 0,
        "failed": 0,
        "skipped": 0,
    }
    items = dict(BulkJobItem.objects.filter(job=job).values_list("ticket_id", "outcome"))
    assert items == {t.pk: "changed" for t in tickets}
    for ticket in tickets:
        assert Ticket.objects.get(pk=ticket.pk).status == "on_hold"
        events = TicketEvent.objects.filter(ticket=ticket, kind="status")
        assert list(events.values_list("actor_user", "source", "before", "after")) == [(ann.pk, "ui", "new", "on_hold")]

    # The ticket of the other queue was in neither selection and is as it was.
    elsewhere.refresh_from_db()
    assert (elsewhere.status, list(elsewhere.tags.all())) == ("new", [])
    assert list(TicketEvent.objects.filter(ticket=elsewhere).values_list("kind", flat=True)) == ["created"]
    assert not BulkJobItem.objects.filter(ticket=elsewhere).exists()
    assert errors == []
