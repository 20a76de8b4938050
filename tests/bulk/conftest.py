"""Bulk jobs through the real services: the end-to-end fixtures (a Celery worker on Redis, PostgreSQL)."""

from tests.e2e.conftest import (  # noqa: F401 (fixtures used by this folder's tests)
    _real_services_required,
    celery_live,
    celery_worker,
    e2e_redis_url,
    real_services,
    smtp_server,
)
