"""Errors raised by services. The API and the views turn them into clear messages."""

from typing import Any


class ApplicationError(Exception):
    """A refusal with a user-facing message; nothing was changed."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


class NotFound(ApplicationError):
    status_code = 404


class Conflict(ApplicationError):
    status_code = 409


class PermissionDenied(ApplicationError):
    status_code = 403
