"""API test clients: each signs in with a token made by ``manage.py drf_create_token``."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    call_command("drf_create_token", user.username, stdout=io.StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=user).key}")
    return client


@pytest.fixture
def agent_api(agent):
    return client_for(agent)


@pytest.fixture
def manager_api(manager):
    return client_for(manager)


@pytest.fixture
def customer_user(customer):
    """Alice's sign-in: a user without a desk role, linked to her customer record."""
    user = UserFactory(username="alice", email="alice@example.com", display_name="Alice Byrne")
    customer.user = user
    customer.save(update_fields=["user"])
    return user


@pytest.fixture
def customer_api(customer_user):
    return client_for(customer_user)
