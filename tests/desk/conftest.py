import re

import pytest

from tests.factories import AgentFactory, QueueFactory


@pytest.fixture
def billing(db):
    return QueueFactory(slug="billing", name="Billing")


@pytest.fixture
def billing_agent(db, billing):
    return AgentFactory(username="bob", display_name="Bob Agent", queues=[billing])


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


def references(response) -> list[str]:
    """References of the ticket rows on a rendered list, in display order."""
    return re.findall(r'<tr class="ticket-row" data-reference="([^"]+)"', response.content.decode())
