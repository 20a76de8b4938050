"""Choosing a ticket's SLA policy by rank and conditions, and its targets per priority."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from servicedesk.sla.models import BusinessCalendar, SlaPolicy, SlaTarget
from servicedesk.sla.policies import policy_for, policy_matches, targets_for
from servicedesk.tickets.models import Customer, Organization

FACTS = {"priority": "high", "channel": "email", "tier": "vip", "queue": "support", "initiator": "inbound"}


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, True),
        ({"priority": "high"}, True),
        ({"priority": "low"}, False),
        ({"priority": ["low", "high"]}, True),
        ({"priority": ["low", "urgent"]}, False),
        ({"channel": "email", "tier": "vip", "queue": "support", "initiator": "inbound"}, True),
        ({"channel": "email", "tier": "standard"}, False),
        ({"tier": ["gold", "vip"], "initiator": ["outbound"]}, False),
    ],
)
def test_policy_matches(match, expected):
    assert policy_matches(match, FACTS) is expected


def test_a_missing_fact_matches_no_condition_on_it():
    facts = {**FACTS, "tier": None}
    assert policy_matches({"tier": "vip"}, facts) is False
    assert policy_matches({"priority": "high"}, facts) is True
    assert policy_matches({}, facts) is True


@pytest.fixture
def dublin(db):
    return BusinessCalendar.objects.create(slug="dublin", name="Dublin", time_zone="Europe/Dublin")


def _policy(slug, rank, calendar, match=None, **targets):
    policy = SlaPolicy.objects.create(slug=slug, name=slug.title(), rank=rank, calendar=calendar, match=match or {})
    for priority, (first_reply, resolution, hours) in targets.items():
        SlaTarget.objects.create(
            policy=policy,
            priority=priority,
            first_reply_minutes=first_reply,
            resolution_minutes=resolution,
            hours=hours,
        )
    return policy


def _for(**facts):
    return policy_for(**{**FACTS, **facts})


@pytest.mark.django_db
def test_lowest_rank_first_and_first_match_wins(dublin):
    fallback = _policy("fallback", 100, dublin)
    vip = _policy("vip", 20, dublin, {"tier": ["vip", "gold"]})
    vip_urgent = _policy("vip-urgent", 10, dublin, {"tier": "vip", "priority": "urgent"})
    outbound = _policy("outbound", 5, dublin, {"initiator": "outbound"})
    chat = _policy("chat", 30, dublin, {"channel": "chat"})
    assert _for() == vip
    assert _for(priority="urgent") == vip_urgent
    assert _for(tier="gold", priority="urgent") == vip
    assert _for(initiator="outbound", priority="urgent") == outbound
    assert _for(tier="standard", channel="chat") == chat
    assert _for(tier=None, channel="web") == fallback
    # Ranks decide, not the order of creation.
    SlaPolicy.objects.filter(pk=fallback.pk).update(rank=1)
    assert _for() == fallback


@pytest.mark.django_db
def test_no_matching_policy(dublin):
    assert _for() is None
    _policy("billing", 1, dublin, {"queue": "billing"})
    assert _for(queue="support") is None
    assert _for(queue=None) is None


@pytest.mark.django_db
def test_tier_comes_from_the_customer_organization(dublin):
    vip = _policy("vip", 1, dublin, {"tier": "vip"})
    standard = _policy("standard", 2, dublin)
    now = timezone.now()
    acme = Customer.objects.create(
        name="Alice",
        organization=Organization.objects.create(name="Acme", tier="vip"),
        created_at=now,
    )
    solo = Customer.objects.create(name="Bob", created_at=now)
    for customer, expected in ((acme, vip), (solo, standard)):
        tier = customer.organization.tier if customer.organization else None
        assert _for(tier=tier) == expected


@pytest.mark.django_db
def test_targets_per_priority(dublin):
    _policy(
        "standard",
        1,
        dublin,
        urgent=(60, 240, "calendar"),
        high=(120, 480, "business"),
        low=(None, 2880, "business"),
    )
    policy = _for()
    assert policy is not None
    assert policy.calendar == dublin
    urgent = targets_for(policy, "urgent")
    assert (urgent.first_reply_minutes, urgent.resolution_minutes, urgent.hours) == (60, 240, "calendar")
    high = targets_for(policy, "high")
    assert (high.first_reply_minutes, high.resolution_minutes, high.hours) == (120, 480, "business")
    low = targets_for(policy, "low")
    assert (low.first_reply_minutes, low.resolution_minutes) == (None, 2880)
    assert targets_for(policy, "normal") is None


@pytest.mark.django_db
def test_two_queries_whatever_the_number_of_policies(dublin, django_assert_max_num_queries):
    for rank in range(1, 31):
        _policy(f"queue-{rank}", rank, dublin, {"queue": f"q{rank}"}, normal=(rank, rank * 2, "business"))
    with django_assert_max_num_queries(2):
        policy = _for(queue="q30", priority="normal")
        target = targets_for(policy, "normal")
        assert policy.calendar.time_zone == "Europe/Dublin"
    assert (policy.slug, target.first_reply_minutes) == ("queue-30", 30)


@pytest.mark.django_db
def test_constraints(dublin):
    _policy("standard", 1, dublin, normal=(60, 120, "business"))
    policy = SlaPolicy.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        SlaPolicy.objects.create(slug="other", name="Other", rank=1, calendar=dublin)
    with pytest.raises(IntegrityError), transaction.atomic():
        SlaTarget.objects.create(policy=policy, priority="normal", first_reply_minutes=5, hours="business")
    with pytest.raises(IntegrityError), transaction.atomic():
        SlaTarget.objects.create(policy=policy, priority="low", first_reply_minutes=0, hours="business")
    with pytest.raises(IntegrityError), transaction.atomic():
        dublin.delete()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "match",
    [[], {"colour": "red"}, {"priority": []}, {"priority": 3}, {"queue": ["support", ""]}],
)
def test_conditions_are_validated(dublin, match):
    policy = SlaPolicy(slug="p", name="P", rank=1, calendar=dublin, match=match)
    with pytest.raises(ValidationError) as caught:
        policy.full_clean()
    assert "match" in caught.value.message_dict


@pytest.mark.django_db
def test_admin_edits_policies_and_targets(admin_client, dublin):
    data = {
        "slug": "standard",
        "name": "Standard",
        "rank": "1",
        "calendar": str(dublin.pk),
        "match": '{"initiator": "inbound"}',
        "warning_percent": "80",
        "targets-TOTAL_FORMS": "1",
        "targets-INITIAL_FORMS": "0",
        "targets-0-priority": "urgent",
        "targets-0-first_reply_minutes": "60",
        "targets-0-resolution_minutes": "240",
        "targets-0-hours": "calendar",
        "escalation_rules-TOTAL_FORMS": "0",
        "escalation_rules-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:sla_slapolicy_add"), data)
    assert response.status_code == 302
    policy = SlaPolicy.objects.get()
    assert (policy.rank, policy.calendar, policy.match, policy.warning_percent) == (
        1,
        dublin,
        {"initiator": "inbound"},
        80,
    )
    assert list(policy.targets.values_list("priority", "first_reply_minutes", "resolution_minutes", "hours")) == [
        ("urgent", 60, 240, "calendar"),
    ]
    assert admin_client.get(reverse("admin:sla_slapolicy_changelist")).status_code == 200
    bad = admin_client.post(
        reverse("admin:sla_slapolicy_add"), {**data, "slug": "x", "rank": "2", "match": '{"colour": 1}'}
    )
    assert bad.status_code == 200
    assert SlaPolicy.objects.count() == 1
