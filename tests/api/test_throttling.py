"""API throttles: per user (token or session), per client IP before credentials are
checked, per IP without credentials; 429 JSON with Retry-After; open without a cache."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from servicedesk.core import ratelimit
from tests.api.conftest import client_for
from tests.factories import AgentFactory
from tests.outage import UNREACHABLE_CACHES

pytestmark = pytest.mark.django_db

LIST = "/api/v1/tickets/"


@pytest.fixture
def clock(monkeypatch):
    now = [1_080_000.0]
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


@pytest.fixture
def rates(settings):
    def apply(**changed: str) -> None:
        framework = {**settings.REST_FRAMEWORK}
        framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], **changed}
        settings.REST_FRAMEWORK = framework

    return apply


def test_a_user_over_their_rate_gets_429_json_with_retry_after_until_the_minute_is_over(agent, rates, clock):
    rates(user="3/minute")
    api = client_for(agent)
    other = client_for(AgentFactory(username="bo", queues=list(agent.queues.all())))

    allowed = [api.get(LIST).status_code for _ in range(3)]
    clock[0] += 20
    refused = api.get(f"{LIST}?status=new")
    other_user = other.get(LIST)
    clock[0] += 39
    still_refused = api.get(LIST)
    clock[0] += 1  # the first request is a minute old
    again = api.get(LIST)

    assert allowed == [200, 200, 200]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "40"
    assert refused.json() == {
        "detail": "Request was throttled. Expected available in 40 seconds.",
        "reason": "throttled",
        "retry_after": 40,
    }
    assert other_user.status_code == 200
    assert (still_refused.status_code, still_refused["Retry-After"]) == (429, "1")
    assert again.status_code == 200


def test_every_token_and_session_of_a_user_share_their_rate(agent, rates, clock):
    rates(user="2/minute")
    by_token = client_for(agent)
    by_session = APIClient()
    by_session.force_login(agent)

    answers = [by_token.get(LIST).status_code, by_session.get(LIST).status_code, by_token.get(LIST).status_code]

    assert answers == [200, 200, 429]


def test_guessing_tokens_from_one_address_is_throttled_before_they_are_checked(agent, rates, clock):
    rates(ip="3/minute")
    guesser = APIClient(REMOTE_ADDR="203.0.113.9")

    answers = [guesser.get(LIST, HTTP_AUTHORIZATION=f"Token {n:040x}").status_code for n in range(4)]
    elsewhere = client_for(agent).get(LIST, REMOTE_ADDR="203.0.113.10")
    spoofed = guesser.get(LIST, HTTP_AUTHORIZATION="Token x", HTTP_X_FORWARDED_FOR="198.51.100.1")

    assert answers == [401, 401, 401, 429]
    assert elsewhere.status_code == 200
    assert (spoofed.status_code, spoofed.json()["reason"]) == (429, "throttled")


def test_requests_without_credentials_are_throttled_per_ip(rates, clock):
    rates(anon="2/minute")
    visitor = APIClient(REMOTE_ADDR="203.0.113.20")

    answers = [visitor.get("/api/schema/").status_code for _ in range(3)]
    other = APIClient(REMOTE_ADDR="203.0.113.21").get("/api/schema/")

    assert answers == [200, 200, 429]
    assert other.status_code == 200


def test_the_api_keeps_answering_when_the_cache_is_unreachable(agent, rates, settings, caplog):
    rates(user="1/minute", ip="1/minute")
    settings.CACHES = UNREACHABLE_CACHES
    api = client_for(agent)

    answers = [api.get(LIST).status_code for _ in range(3)]

    assert answers == [200, 200, 200]
    warnings = {record.getMessage() for record in caplog.records if record.name == "servicedesk.core.throttles"}
    assert warnings == {
        "API throttle ip not applied: the cache is unreachable",
        "API throttle user not applied: the cache is unreachable",
    }
