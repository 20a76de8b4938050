"""The demo desk routes new support tickets to the demo agent out of the box."""

import io

import pytest
from django.core.management import call_command

from servicedesk.routing.models import AgentProfile, QueueRouting
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import AgentPresence
from servicedesk.tickets.services.intake import inbound_message_receive

pytestmark = pytest.mark.django_db


def seed() -> None:
    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())


def test_seed_demo_gives_the_demo_agent_a_profile_and_routes_support():
    seed()
    seed()
    profile = AgentProfile.objects.select_related("user").get()
    assert (profile.user.external_id, profile.availability, profile.capacity) == ("demo-agent", "online", 10)
    # Online since the first seed, in the one presence history the reports read.
    assert list(AgentPresence.objects.filter(agent=profile.user).values_list("at", "state", "source")) == [
        (profile.availability_changed_at, "ready", "desk")
    ]
    assert list(QueueRouting.objects.values_list("queue__slug", "mode")) == [("support", "round_robin")]
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id="demo-new",
            sender=SenderIdentity("email", "someone@example.com"),
            subject="New question",
            text="Hello",
            queue="support",
        )
    )
    assert result.ticket.assignee == profile.user
