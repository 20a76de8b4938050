"""Celery tasks of the reports: thin, JSON arguments, any may run twice."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from reports.snapshots import JOB_LEASE, report_job_run, report_jobs_pending_dispatch, snapshots_due
from reports.subscriptions import subscriptions_send


@shared_task(name="reports.snapshots_due")
def snapshots_due_task() -> dict[str, int]:
    """Beat, hourly: daily, weekly and monthly snapshots that are missing or stale, per calendar."""
    return snapshots_due(now=timezone.now())


# Stopped before its claim's lease ends, so a job is never taken over from a live worker.
@shared_task(name="reports.job_run", time_limit=int(JOB_LEASE.total_seconds()) - 60)
def report_job_run_task(job_id: int) -> str:
    """Compute one on-demand report job; a finished job is left alone."""
    return report_job_run(job_id=job_id)


@shared_task(name="reports.jobs_pending_dispatch")
def report_jobs_pending_dispatch_task() -> int:
    """Beat, every minute: enqueue again the jobs whose task was lost (broker down, worker lost)."""
    return report_jobs_pending_dispatch()


@shared_task(name="reports.subscriptions_send")
def subscriptions_send_task() -> int:
    """Beat, hourly: email each subscriber the last complete week or month, once per period."""
    return subscriptions_send(now=timezone.now())
