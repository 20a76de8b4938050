"""One sign-in link pressed in several browsers at the same moment, on PostgreSQL: one session."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.web.models import CustomerSession, SignInLink
from channels_app.web.signin import signin_link_use
from tests.concurrency import run_at_once
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]


def test_a_link_used_at_once_in_six_browsers_signs_in_exactly_one():
    customer = CustomerFactory()
    now = timezone.now()
    SignInLink.objects.create(
        customer=customer,
        address="someone@example.com",
        digest=hashlib.sha256(b"the-token").hexdigest(),
        created_at=now,
        expires_at=now + timedelta(minutes=15),
    )
    keys = run_at_once(6, lambda _i: signin_link_use(token="the-token"))
    assert sum(key is not None for key in keys) == 1
    assert CustomerSession.objects.count() == 1
