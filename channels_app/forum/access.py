"""Who may read and write what in the community: one function per kind of object, used on every path.

- **Categories** (``categories_visible_to``): a public category is read by
  anyone; a signed-in category by signed-in customers; an organization's
  category by the customers of that organization. Agents read every category.
- **Topics** (``topics_visible_to``, ``topic_get_for``): a visible topic of a
  category the viewer reads; a held or hidden topic only to its author and
  to agents. A merged topic is still read (its page points to its target).
- **Posts** (``posts_visible_to``): a visible post of a topic the viewer
  reads; a held or hidden post only to its author and to agents.
- **Writing** (``may_write_in``, ``may_reply``): signed-in customers (the help
  centre's session) and agents, not while suspended; replies not on a locked
  topic (agents excepted); announcements by agents only.

Anything a viewer may not read is "not found" (``NotFound``, 404 on pages),
never "forbidden", so hidden and private topics cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import NotFound
from servicedesk.tickets.models import Customer

from .models import Category, Kind, Member, Post, State, Topic, Visibility


@dataclass(frozen=True)
class Viewer:
    """Who is reading: an agent (the desk's sign-in), a customer (the help centre's), or nobody.

    ``member`` is their forum profile once they have one (made when they first write).
    """

    customer: Customer | None = None
    agent: User | None = None
    member: Member | None = None

    @property
    def is_staff(self) -> bool:
        return self.agent is not None

    @property
    def signed_in(self) -> bool:
        return self.agent is not None or self.customer is not None


ANONYMOUS = Viewer()


def viewer_for(*, user: Any = None, customer: Customer | None = None) -> Viewer:
    """The viewer of a desk user (an agent, else nobody) or of a help-centre customer; agent first.

    One query for the member's profile when someone is signed in.
    """
    if user is not None and getattr(user, "is_authenticated", False) and is_agent(user):
        return Viewer(agent=user, member=Member.objects.filter(user=user).first())
    if customer is not None:
        return Viewer(customer=customer, member=Member.objects.filter(customer=customer).first())
    return ANONYMOUS


def viewer_of_member(member: Member) -> Viewer:
    """The viewer a member acts as: an agent's profile counts as staff only while the user is an agent."""
    if member.user_id is not None:
        user = member.user
        return Viewer(agent=user, member=member) if user is not None and is_agent(user) else ANONYMOUS
    return Viewer(customer=member.customer, member=member)


# ---------------------------------------------------------------- categories


def _category_rule(viewer: Viewer, prefix: str = "") -> Q:
    """The categories ``viewer`` reads, as a condition on ``prefix`` + the category's fields."""
    public = Q(**{f"{prefix}visibility": Visibility.PUBLIC})
    if viewer.is_staff:
        return Q()
    if viewer.customer is None:
        return public
    rule = public | Q(**{f"{prefix}visibility": Visibility.SIGNED_IN})
    if viewer.customer.organization_id:
        rule |= Q(
            **{
                f"{prefix}visibility": Visibility.ORGANIZATION,
                f"{prefix}organization_id": viewer.customer.organization_id,
            }
        )
    return rule


def categories_visible_to(viewer: Viewer) -> QuerySet[Category]:
    """Every category ``viewer`` may read. The one rule for categories."""
    return Category.objects.filter(_category_rule(viewer))


def category_get_for(viewer: Viewer, slug: str) -> Category:
    found = categories_visible_to(viewer).filter(slug=slug).first()
    if found is None:
        raise NotFound(_("Category not found."))
    return found


def can_read_category(viewer: Viewer, category: Category) -> bool:
    """The same rule as ``categories_visible_to``, for a category already in hand (no query)."""
    if viewer.is_staff or category.visibility == Visibility.PUBLIC:
        return True
    if viewer.customer is None:
        return False
    if category.visibility == Visibility.SIGNED_IN:
        return True
    return bool(viewer.customer.organization_id) and category.organization_id == viewer.customer.organization_id


# ---------------------------------------------------------------- topics


def topics_visible_to(viewer: Viewer, *, own_unlisted: bool = True) -> QuerySet[Topic]:
    """Every topic ``viewer`` may read. The one rule for topics.

    ``own_unlisted=False`` leaves out the viewer's own held and hidden topics
    (lists and feeds show only what everyone who reads the category sees,
    which lets the database use the list's index).
    """
    topics = Topic.objects.filter(_category_rule(viewer, "category__"))
    if viewer.is_staff:
        return topics
    if own_unlisted and viewer.member is not None:
        return topics.filter(Q(state=State.VISIBLE) | Q(author_id=viewer.member.pk))
    return topics.filter(state=State.VISIBLE)


def topic_get_for(viewer: Viewer, pk: int) -> Topic:
    """One topic ``viewer`` may read, with its category and author, else NotFound."""
    found = topics_visible_to(viewer).select_related("category", "author").filter(pk=pk).first()
    if found is None:
        raise NotFound(_("Topic not found."))
    return found


def can_read_topic(viewer: Viewer, topic: Topic) -> bool:
    """``topics_visible_to``'s rule for a topic in hand with its category (no query)."""
    if not can_read_category(viewer, topic.category):
        return False
    if viewer.is_staff or topic.state == State.VISIBLE:
        return True
    return viewer.member is not None and topic.author_id == viewer.member.pk


# ---------------------------------------------------------------- posts


def posts_visible_to(viewer: Viewer, topic: Topic) -> QuerySet[Post]:
    """The posts of a topic ``viewer`` already may read: visible ones, and their own held or hidden ones."""
    posts = Post.objects.filter(topic=topic)
    if viewer.is_staff:
        return posts
    if viewer.member is not None:
        return posts.filter(Q(state=State.VISIBLE) | Q(author_id=viewer.member.pk))
    return posts.filter(state=State.VISIBLE)


def can_read_post(viewer: Viewer, post: Post) -> bool:
    """The rule of ``posts_visible_to`` (and of its topic) for a post in hand with its topic and category."""
    if not can_read_topic(viewer, post.topic):
        return False
    if viewer.is_staff or post.state == State.VISIBLE:
        return True
    return viewer.member is not None and post.author_id == viewer.member.pk


def post_get_for(viewer: Viewer, pk: int) -> Post:
    """One post ``viewer`` may read, with its topic and category, else NotFound."""
    post = Post.objects.select_related("topic__category", "author").filter(pk=pk).first()
    if post is None or not can_read_post(viewer, post):
        raise NotFound(_("Post not found."))
    return post


# ---------------------------------------------------------------- writing


def is_suspended(member: Member | None) -> bool:
    return member is not None and member.suspended_until is not None and member.suspended_until > timezone.now()


def may_write_in(viewer: Viewer, category: Category, *, kind: str = Kind.QUESTION) -> bool:
    """Whether ``viewer`` may open a topic of ``kind`` in ``category``."""
    if not viewer.signed_in or is_suspended(viewer.member) or not can_read_category(viewer, category):
        return False
    return kind != Kind.ANNOUNCEMENT or viewer.is_staff


def may_reply(viewer: Viewer, topic: Topic) -> bool:
    """Whether ``viewer`` may reply to ``topic``: a visible topic they read, not locked (agents excepted),
    not merged away."""
    if not viewer.signed_in or is_suspended(viewer.member) or not can_read_topic(viewer, topic):
        return False
    if topic.state != State.VISIBLE or topic.merged_into_id is not None:
        return False
    return viewer.is_staff or not topic.locked


def may_edit(viewer: Viewer, post: Post) -> bool:
    """The post's author (not while suspended) and agents edit a post."""
    if viewer.is_staff:
        return True
    member = viewer.member
    return (
        member is not None and post.author_id == member.pk and not is_suspended(member) and can_read_post(viewer, post)
    )


def may_accept(viewer: Viewer, topic: Topic) -> bool:
    """The question's author and agents accept (and unaccept) answers."""
    if topic.kind != Kind.QUESTION:
        return False
    if viewer.is_staff:
        return True
    member = viewer.member
    return member is not None and topic.author_id == member.pk and not is_suspended(member)
