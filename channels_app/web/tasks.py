"""Celery tasks of the help centre: sign-in links by mail, and forgetting expired links and sessions."""

from __future__ import annotations

from celery import shared_task

from .signin import signin_expired_delete, signin_link_mail


@shared_task(name="web.signin_link_mail", autoretry_for=(OSError,), retry_backoff=5, max_retries=3)
def signin_link_mail_task(link_id: int, token: str, language: str = "") -> bool:
    """Mail a sign-in link (nothing for a request whose address is no customer's: ``link_id`` 0)."""
    return signin_link_mail(link_id=link_id, token=token, language=language)


@shared_task(name="web.signin_expired_delete")
def signin_expired_delete_task() -> int:
    return signin_expired_delete()


@shared_task(name="web.verification_mail", autoretry_for=(OSError,), retry_backoff=5, max_retries=3)
def verification_mail_task(check_id: int, token: str, language: str = "") -> bool:
    """Mail the link that proves an address a signed-in customer is adding."""
    from .verify import verification_mail

    return verification_mail(check_id=check_id, token=token, language=language)
