"""Desk sign-in limits: after repeated failures an account waits a short, growing
delay (shown in the form); the real user signs in once it is over; per IP too."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from servicedesk.core import ratelimit
from tests.outage import UNREACHABLE_CACHES

pytestmark = pytest.mark.django_db

LOGIN = reverse("desk:login")
RIGHT, WRONG = "pass-word-123", "wrong"


@pytest.fixture
def clock(monkeypatch):
    now = [1_080_000.0]  # a 15-minute window starts here
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


@pytest.fixture
def limits(settings):
    settings.SERVICEDESK = {
        **settings.SERVICEDESK,
        "SIGNIN_FAILURES_PER_ACCOUNT": 3,
        "SIGNIN_FAILURES_PER_IP": 10,
        "SIGNIN_FAILURE_WINDOW_SECONDS": 900,
        "SIGNIN_DELAY_SECONDS": 30,
        "SIGNIN_DELAY_MAX_SECONDS": 100,
    }


def sign_in(client, password: str, *, username: str = "ann", ip: str = "192.0.2.1", language: str = "en"):
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, HTTP_ACCEPT_LANGUAGE=language
    )


def errors(response) -> list[str]:
    return response.context["form"].non_field_errors()


def wait_message(seconds: int) -> str:
    unit = "second" if seconds == 1 else "seconds"
    return f"Too many failed sign-in attempts. Please wait {seconds} {unit} and try again."


def test_after_the_failures_the_account_waits_then_the_real_user_signs_in(client, agent, limits, clock):
    failures = [errors(sign_in(client, WRONG)) for _ in range(3)]
    clock[0] += 10
    refused = sign_in(client, RIGHT, ip="198.51.100.4")  # the right password, another address: still waits

    assert (
        failures == [["Please enter a correct username and password. Note that both fields may be case-sensitive."]] * 3
    )
    assert refused.status_code == 200
    assert errors(refused) == [wait_message(20)]
    assert wait_message(20) in refused.content.decode()
    assert "_auth_user_id" not in client.session

    clock[0] += 20  # the 30 seconds are over
    signed_in = sign_in(client, RIGHT)

    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/desk/"
    assert client.session["_auth_user_id"] == str(agent.pk)


def test_the_delay_grows_with_each_further_failure_up_to_the_maximum(client, agent, limits, clock):
    for _ in range(3):
        sign_in(client, WRONG)
    waits = []
    for _ in range(4):
        clock[0] += 200  # past any delay so far; the window is 900 s long
        sign_in(client, WRONG)
        waits.append(errors(sign_in(client, RIGHT)))

    assert waits == [[wait_message(60)], [wait_message(100)], [wait_message(100)], [wait_message(100)]]


def test_tries_during_the_wait_are_not_counted_and_a_sign_in_clears_the_failures(client, agent, limits, clock):
    for _ in range(3):
        sign_in(client, WRONG)
    during = [errors(sign_in(client, WRONG)) for _ in range(5)]
    clock[0] += 30

    assert during == [[wait_message(30)]] * 5
    assert sign_in(client, RIGHT).status_code == 302
    client.logout()
    # Failures start from zero again: two more wrong passwords cost no wait.
    after = [errors(sign_in(client, WRONG))[0] for _ in range(2)]
    assert after[-1].startswith("Please enter a correct username and password.")
    assert sign_in(client, RIGHT).status_code == 302


def test_other_accounts_are_not_held_up_by_one_under_attack(client, agent, manager, limits, clock):
    for _ in range(3):
        sign_in(client, WRONG, ip="203.0.113.1")

    assert errors(sign_in(client, RIGHT, ip="203.0.113.1")) == [wait_message(30)]
    assert sign_in(client, RIGHT, username="max", ip="203.0.113.1").status_code == 302


def test_one_address_failing_across_accounts_waits_for_the_window_to_end(client, agent, limits, settings, clock):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "SIGNIN_FAILURES_PER_IP": 4}
    for n in range(4):
        sign_in(client, WRONG, username=f"guess{n}", ip="203.0.113.7")
    clock[0] += 600

    refused = sign_in(client, RIGHT, ip="203.0.113.7")
    from_elsewhere = sign_in(client, RIGHT, ip="203.0.113.8")

    assert errors(refused) == [wait_message(300)]
    assert from_elsewhere.status_code == 302


def test_the_wait_is_shown_in_chinese(client, agent, limits, clock):
    for _ in range(3):
        sign_in(client, WRONG)

    refused = sign_in(client, RIGHT, language="zh-CN,zh;q=0.9")

    assert errors(refused) == ["登录失败次数过多。请等待 30 秒后再试。"]


def test_the_admin_sign_in_has_the_same_limits(client, limits, clock):
    from tests.factories import UserFactory

    UserFactory(username="root", is_staff=True, is_superuser=True)
    for _ in range(3):
        client.post("/admin/login/", {"username": "root", "password": WRONG})

    refused = client.post("/admin/login/", {"username": "root", "password": RIGHT})

    assert refused.context["form"].non_field_errors() == [wait_message(30)]


def test_sign_in_works_when_the_cache_is_unreachable(client, agent, limits, settings, caplog):
    settings.CACHES = UNREACHABLE_CACHES

    with caplog.at_level(logging.WARNING, logger="servicedesk.core.ratelimit"):
        failures = [sign_in(client, WRONG).status_code for _ in range(5)]
        signed_in = sign_in(client, RIGHT)

    assert failures == [200] * 5
    assert signed_in.status_code == 302
    assert "Rate limit signin-account not counted: the cache is unreachable" in {r.getMessage() for r in caplog.records}
