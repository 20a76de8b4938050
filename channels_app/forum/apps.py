from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ForumChannelConfig(AppConfig):
    name = "channels_app.forum"
    label = "forum_channel"
    verbose_name = _("Community forum")

    def ready(self) -> None:
        from channels_app.email.outbound import deliver_by_email
        from servicedesk.tickets import outbound

        # A topic escalated to a ticket is private support: its acknowledgement and the agents'
        # replies go to the author by email (docs/community.md, "Topics and tickets").
        outbound.register("forum", deliver_by_email)

        from servicedesk.kb.sources import answer_source_register

        from .search import community_answers

        # Answered questions beside the articles in the help centre's search and suggestions.
        answer_source_register(community_answers)
