"""Celery tasks of the workspace: thin, JSON arguments, any may run twice (docs/inbox.md)."""

from __future__ import annotations

from celery import shared_task

from servicedesk.desk.bulk import bulk_job_run, bulk_jobs_pending_dispatch


@shared_task(name="desk.bulk_job_run")
def bulk_job_run_task(job_id: int) -> str:
    """Run one bulk job; a job another run holds, or a finished one, is left alone."""
    return bulk_job_run(job_id=job_id)


@shared_task(name="desk.bulk_jobs_pending_dispatch")
def bulk_jobs_pending_dispatch_task() -> int:
    """Beat, every minute: enqueue again the bulk jobs whose task was lost (broker down, worker lost)."""
    return bulk_jobs_pending_dispatch()
