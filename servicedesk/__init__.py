"""Service desk: a multichannel customer-service ticketing system."""

from servicedesk.celery import app as celery_app

__all__ = ("celery_app",)
