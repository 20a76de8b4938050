"""Who may manage webhooks: managers and admins (every queue's events go to an endpoint);
only admins let an endpoint use private addresses (docs/webhooks.md, "Access")."""

from __future__ import annotations

from typing import Any

from servicedesk.accounts.roles import ADMIN, sees_all_queues, user_role


def webhooks_manageable_by(user: Any) -> bool:
    return sees_all_queues(user)


def private_addresses_allowed_to(user: Any) -> bool:
    return user_role(user) == ADMIN
