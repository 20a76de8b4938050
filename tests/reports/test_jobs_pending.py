"""A report job requested while the broker is down stays queued until the beat sweep enqueues it
again; one claim (a conditional UPDATE) lets one run compute it, however often the sweep runs."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from reports import snapshots
from reports.models import JobStatus, ReportJob, ReportSnapshot
from reports.services import report_compute
from reports.tasks import report_jobs_pending_dispatch_task
from tests.outage import CLOSED_PORT_REDIS, celery_broker
from tests.reports.delivery_helpers import calendar_make, ticket_opened

pytestmark = pytest.mark.django_db

START, END = date(2025, 10, 20), date(2025, 11, 1)
AS_OF = datetime(2025, 11, 10, 12, tzinfo=UTC)


@pytest.fixture
def dublin(db):
    return calendar_make()


@pytest.fixture
def computations(monkeypatch) -> list[tuple[date, date]]:
    """The periods ``snapshot_compute`` computed, in order (the real function runs)."""
    seen: list[tuple[date, date]] = []
    real = snapshots.snapshot_compute

    def counting(**kwargs):
        seen.append((kwargs["start"], kwargs["end"]))
        return real(**kwargs)

    monkeypatch.setattr(snapshots, "snapshot_compute", counting)
    return seen


def job_request(manager, dublin) -> ReportJob:
    return snapshots.report_job_create(user=manager, calendar=dublin, start=START, end=END, as_of=AS_OF)


def test_a_job_requested_while_the_broker_is_down_is_computed_once_when_it_is_back(
    manager, dublin, queue, computations, caplog, django_capture_on_commit_callbacks
):
    ticket_opened(queue, datetime(2025, 10, 22, 9, 0, tzinfo=UTC))
    with celery_broker(CLOSED_PORT_REDIS), caplog.at_level(logging.WARNING):
        with django_capture_on_commit_callbacks(execute=True):
            job = job_request(manager, dublin)
        assert snapshots.report_jobs_pending_dispatch(now=timezone.now() + timedelta(minutes=2)) == 0

    job.refresh_from_db()
    assert (job.status, job.progress, job.claimed_at, job.result) == (JobStatus.QUEUED, 0, None, None)
    assert computations == []
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [f"Could not enqueue reports.job_run({job.pk},): the broker is unreachable"] * 2

    # The broker is back (tasks run as the worker would). Within the minute the job is left to its first task.
    assert snapshots.report_jobs_pending_dispatch() == 0
    later = timezone.now() + timedelta(minutes=2)
    assert snapshots.report_jobs_pending_dispatch(now=later) == 1
    assert snapshots.report_jobs_pending_dispatch(now=later) == 0

    assert computations == [(START, END)]
    job.refresh_from_db()
    assert (job.status, job.progress) == (JobStatus.DONE, 100)
    expected = report_compute(start=START, end=END, as_of=AS_OF, calendar=dublin)
    assert {k: v for k, v in job.result.items() if k != "backlog"} == expected
    assert job.result["tickets"]["in_scope"] == 1
    assert job.snapshot_id == ReportSnapshot.objects.get().pk


def test_the_first_task_arriving_after_the_sweep_computes_nothing(
    manager, dublin, computations, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = job_request(manager, dublin)
    assert len(callbacks) == 1

    assert report_jobs_pending_dispatch_task.apply().get() == 0  # not a minute old yet
    assert snapshots.report_jobs_pending_dispatch(now=timezone.now() + timedelta(minutes=2)) == 1
    callbacks[0]()

    assert computations == [(START, END)]
    assert ReportJob.objects.get(pk=job.pk).status == JobStatus.DONE


def test_a_running_job_is_taken_over_only_after_the_lease(manager, dublin, computations):
    job = job_request(manager, dublin)  # its task is never enqueued: no commit in this test
    claimed_at = timezone.now() - timedelta(minutes=5)
    ReportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, progress=40, claimed_at=claimed_at, created_at=claimed_at
    )

    # A worker is computing it: a second delivery of its task, and the sweep, leave it alone.
    assert snapshots.report_job_run(job_id=job.pk) == JobStatus.RUNNING
    assert snapshots.report_jobs_pending_dispatch() == 0
    assert computations == []
    assert ReportJob.objects.filter(pk=job.pk).values_list("progress", "claimed_at").get() == (40, claimed_at)

    # The claim is now older than the lease: its worker is lost, and the sweep takes it over, once.
    claimed_at = timezone.now() - snapshots.JOB_LEASE - timedelta(minutes=1)
    ReportJob.objects.filter(pk=job.pk).update(claimed_at=claimed_at)
    assert snapshots.report_jobs_pending_dispatch() == 1
    assert snapshots.report_jobs_pending_dispatch() == 0

    assert computations == [(START, END)]
    job.refresh_from_db()
    assert (job.status, job.progress) == (JobStatus.DONE, 100)
    assert job.claimed_at is not None and job.claimed_at > claimed_at


def test_a_job_left_running_before_claims_were_stamped_counts_from_its_creation(manager, dublin, computations):
    recent, old = job_request(manager, dublin), job_request(manager, dublin)
    ReportJob.objects.filter(pk=recent.pk).update(
        status=JobStatus.RUNNING, created_at=timezone.now() - timedelta(minutes=5)
    )
    ReportJob.objects.filter(pk=old.pk).update(
        status=JobStatus.RUNNING, created_at=timezone.now() - snapshots.JOB_LEASE - timedelta(minutes=1)
    )

    assert snapshots.report_jobs_pending_dispatch() == 1

    assert computations == [(START, END)]
    assert dict(ReportJob.objects.values_list("pk", "status")) == {
        recent.pk: JobStatus.RUNNING,
        old.pk: JobStatus.DONE,
    }
