"""A bulk job's progress, pushed to its agent's open desk pages (``desk.bulk_job``).

The job's run pushes it when it starts, about every second while it works,
and when it ends (``bulk.py``); the push names only the job. Each socket of
the agent answers with the job's progress read from the database, and only
to the job's owner or an admin (``bulk.bulk_job_may_see``), as the page and
the API decide. The inbox's script shows it in the job's progress element.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from servicedesk.core.realtime import realtime_publish
from servicedesk.live.pushes import user_group, user_push

if TYPE_CHECKING:
    from servicedesk.desk.models import BulkJob

BULK_JOB_CHANGED = "desk.bulk_job"


def bulk_job_changed_publish(*, job: BulkJob) -> None:
    """After commit, tell the job owner's open desk pages that the job moved on."""
    realtime_publish(group=user_group(job.owner_id), kind=BULK_JOB_CHANGED, data={"job": job.pk})


@user_push(BULK_JOB_CHANGED)
def bulk_job_frame(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    """``{"type": "bulk_job", "job": {...}}``: the job's progress, to its owner and admins only."""
    from servicedesk.desk.bulk import bulk_job_may_see, bulk_job_state
    from servicedesk.desk.models import BulkJob

    job_id = data.get("job")
    job = BulkJob.objects.filter(pk=job_id).first() if isinstance(job_id, int) else None
    if job is None or not bulk_job_may_see(user, job):
        return None
    return {"type": "bulk_job", "job": bulk_job_state(job)}
