# ruff: noqa: RUF001  (Chinese text with its own punctuation)
"""``manage.py seed_community``: the demo's community, after ``seed_demo`` (the Quick start runs both).

Two categories (questions, a support category escalating to the Support
queue after 24 business hours on the default calendar, and ideas), and a
few topics between the demo customer, another customer and the demo agent:
a question with an accepted staff answer, one answered by a customer, an
idea with votes, in English and Chinese. Written through the forum's
services, as members would write them. Running it again adds nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from servicedesk.accounts.models import User
from servicedesk.sla.models import BusinessCalendar
from servicedesk.tickets.models import Customer, Identity, IdentityKind, Queue
from servicedesk.tickets.services.customers import sender_resolve

from ...models import Category, Kind, Post, State, Topic
from ...moderation import post_approve
from ...services import member_ensure, post_accept, post_create, topic_create, topic_vote

DEMO_CUSTOMER = "customer@demo.example"
DEMO_AGENT = "agent@demo.example"
OTHER_CUSTOMER = ("Sam Reader", "sam@demo.example")
CATEGORIES = (
    ("questions", "Questions", "问题", "Ask the community and our staff.", "向社区和工作人员提问。", True),
    ("ideas", "Ideas", "建议", "What should we build next?", "我们接下来应该做什么？", False),
)


class Command(BaseCommand):
    help = "Add the demo's community categories and topics (after seed_demo)."

    def handle(self, *args: Any, **options: Any) -> None:
        identity = Identity.objects.select_related("customer").filter(kind=IdentityKind.EMAIL, value=DEMO_CUSTOMER)
        found = identity.first()
        agent = User.objects.filter(email=DEMO_AGENT).first()
        if found is None or agent is None:
            raise CommandError("Run seed_demo first: the demo customer and agent are missing.")
        if Category.objects.filter(slug="questions").exists():
            self.stdout.write("The demo community is there already.")
            return
        with transaction.atomic():
            self._seed(found.customer, agent)
        self.stdout.write("Demo community: /community/")

    def _seed(self, customer: Customer, agent: User) -> None:
        calendar = BusinessCalendar.objects.filter(is_default=True).first() or BusinessCalendar.objects.first()
        queue = Queue.objects.filter(slug="support").first()
        categories = {}
        for position, (slug, name, name_zh, about, about_zh, support) in enumerate(CATEGORIES, start=1):
            categories[slug] = Category.objects.create(
                slug=slug,
                name=name,
                name_zh_hans=name_zh,
                description=about,
                description_zh_hans=about_zh,
                is_support=support,
                calendar=calendar if support else None,
                queue=queue if support else None,
                position=position,
            )
        other = sender_resolve(kind=IdentityKind.EMAIL, value=OTHER_CUSTOMER[1], name=OTHER_CUSTOMER[0]).customer
        demo, sam, staff = member_ensure(customer=customer), member_ensure(customer=other), member_ensure(user=agent)
        questions, ideas = categories["questions"], categories["ideas"]

        address = self._approved(
            agent,
            topic_create(
                member=demo,
                category=questions,
                kind=Kind.QUESTION,
                title="How do I change the email address on my account?",
                body="I moved to a new provider. Where do I change the address you write to?",
            ),
        )
        self._approved(
            agent,
            post_create(member=sam, topic=address, body="I think it is under *Your addresses* in the help centre."),
        )
        answer = post_create(
            member=staff,
            topic=address,
            body="Sign in at **/help/**, open *Your addresses*, add the new one and confirm it from the mail we send.",
        )
        post_accept(member=demo, post=answer)

        refund = self._approved(
            agent,
            topic_create(
                member=sam,
                category=questions,
                kind=Kind.QUESTION,
                title="退款需要多长时间？",
                body="我昨天申请了退款，一般多久能到账？",
            ),
        )
        reply = self._approved(agent, post_create(member=demo, topic=refund, body="我的退款用了三个工作日。"))
        post_accept(member=sam, post=reply)

        idea = self._approved(
            agent,
            topic_create(
                member=sam,
                category=ideas,
                kind=Kind.IDEA,
                title="Dark mode for the help centre",
                body="Reading the articles at night would be easier on the eyes.",
            ),
        )
        topic_vote(member=demo, topic=idea)

    @staticmethod
    def _approved(agent: User, written: Any) -> Any:
        """``written`` (a topic or a post) published: a new member's first post waits for a moderator
        (SD_FORUM_NEW_HELD_POSTS), and the demo agent approves it as one would."""
        post = Post.objects.get(topic=written, position=1) if isinstance(written, Topic) else written
        if post.state == State.HELD:
            post_approve(agent=agent, post=post)
        written.refresh_from_db()
        return written
