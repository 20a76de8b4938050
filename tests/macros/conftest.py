"""Macros and canned replies: queues, agents inside and outside them, a ticket, and builders."""

from __future__ import annotations

from typing import Any

import pytest

from servicedesk.macros.models import Scope
from servicedesk.macros.services import CannedReplyInput, MacroInput, canned_reply_save, macro_save
from tests.factories import AgentFactory, QueueFactory, ticket_make


@pytest.fixture
def billing(db):
    return QueueFactory(slug="billing", name="Billing")


@pytest.fixture
def outsider(billing):
    """An agent of billing only: support's tickets are not theirs to see."""
    return AgentFactory(username="otto", queues=[billing])


@pytest.fixture
def colleague(queue):
    """Another agent of support."""
    return AgentFactory(username="cleo", queues=[queue])


@pytest.fixture
def ticket(queue, customer):
    return ticket_make(customer=customer, queue=queue, subject="Refund please")


def macro_make(
    user: Any, actions: list[dict[str, Any]], *, name: str = "Macro", scope: str = Scope.PERSONAL, queue=None
):  # type: ignore[no-untyped-def]
    return macro_save(data=MacroInput(name=name, scope=scope, queue=queue, actions=actions), user=user)


def canned_make(
    user: Any, text: str, *, name: str = "Refund", scope: str = Scope.PERSONAL, queue=None, translations=None
):  # type: ignore[no-untyped-def]
    return canned_reply_save(
        data=CannedReplyInput(name=name, scope=scope, queue=queue, text=text, translations=translations), user=user
    )
