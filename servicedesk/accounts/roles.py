"""Agent roles as Django groups, and the one place that says what each may do.

``agent``: works tickets in the queues they belong to.
``manager``: every queue, reports, configuration of queues and topics.
``admin``: everything, including users and roles.
"""

from typing import Any

AGENT = "agent"
MANAGER = "manager"
ADMIN = "admin"
ROLES = (AGENT, MANAGER, ADMIN)

# Permissions granted to each role (app_label.codename). Managers and admins
# include what agents have.
_AGENT_PERMS = [
    "tickets.view_ticket",
    "tickets.change_ticket",
    "tickets.add_ticket",
    "tickets.view_customer",
    "tickets.change_customer",
    "tickets.add_message",
    "tickets.view_message",
]
_MANAGER_PERMS = [
    *_AGENT_PERMS,
    "tickets.view_all_queues",
    "tickets.view_reports",
    "tickets.add_queue",
    "tickets.change_queue",
    "tickets.view_queue",
    "tickets.add_topic",
    "tickets.change_topic",
    "tickets.view_topic",
]
# Managers run service levels and routing: calendars, policies, escalations, skills, agent profiles.
_MANAGER_PERMS += [
    f"{app}.{action}_{model}"
    for app, models in (
        ("sla", ("businesscalendar", "openingwindow", "holiday", "slapolicy", "slatarget", "escalationrule")),
        ("routing", ("skill", "agentprofile", "queuerouting")),
    )
    for model in models
    for action in ("add", "change", "view")
]
ROLE_PERMISSIONS: dict[str, list[str]] = {
    AGENT: _AGENT_PERMS,
    MANAGER: _MANAGER_PERMS,
    ADMIN: [*_MANAGER_PERMS, "accounts.add_user", "accounts.change_user", "accounts.view_user"],
}


def user_role(user: Any) -> str | None:
    """The highest role of ``user``, or None for a customer or anonymous visitor."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    names = _group_names(user)
    for role in (ADMIN, MANAGER, AGENT):
        if role in names:
            return role
    return None


def is_agent(user: Any) -> bool:
    """Anyone who works in the desk (agent, manager or admin)."""
    return user_role(user) is not None


def sees_all_queues(user: Any) -> bool:
    return user_role(user) in (MANAGER, ADMIN)


def _group_names(user: Any) -> set[str]:
    cached = getattr(user, "_sd_group_names", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._sd_group_names = cached
    return cached


def roles_sync(**_kwargs: Any) -> None:
    """Create the role groups and give them their permissions (idempotent; runs after migrate)."""
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)
