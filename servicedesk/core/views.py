"""Liveness: the database and the Celery broker answer."""

from django.http import HttpRequest, JsonResponse

from servicedesk.core.health import broker_ok, database_ok


def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_ok(), "broker": broker_ok()}
    return JsonResponse({"ok": all(checks.values()), **checks}, status=200 if all(checks.values()) else 503)
