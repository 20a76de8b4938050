"""Full-text search of tickets (servicedesk/tickets/search.py, docs/search.md) on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.paginator import EmptyPage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.kb.services import search_terms
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, Ticket
from servicedesk.tickets.search import websearch_text
from servicedesk.tickets.selectors import TicketFilters, ticket_list
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_subject_change, ticket_tags_set
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make


@pytest.fixture(autouse=True)
def _postgres(postgres_only):
    """The search documents are PostgreSQL's: these tests fail (never skip) elsewhere."""


def customer_says(ticket: Ticket, text: str) -> Message:
    return Message.objects.create(
        ticket=ticket, kind="public_enduser", channel="web", text=text, created_at=timezone.now()
    )


def found(user, search: str, **filters) -> list[str]:
    params = {"search": search, **filters}
    return [t.subject for t in ticket_list(user=user, filters=TicketFilters.from_params(params))]


@pytest.fixture
def desk(db, queue, manager):
    billing = QueueFactory(slug="billing", name="Billing")
    alice = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    bob = CustomerFactory(name="Bob Stone", email="bob.stone@mail.test")
    printer = ticket_make(customer=alice, queue=queue, subject="Printer jam on floor two")
    customer_says(printer, "The printers keep jamming when printing duplex.")
    refund = ticket_make(customer=bob, queue=billing, subject="Refund for order 1182")
    customer_says(refund, "Please refund, the box arrived crushed.")
    ticket_note_create(ticket=refund, author=manager, text="Courier liability: claim filed with Shentong.")
    zh = ticket_make(customer=alice, queue=queue, subject="打印机无法连接")
    customer_says(zh, "我的打印机昨天开始无法连接网络。")
    ticket_tags_set(ticket=zh, tags=["wifi-outage"], actor=Actor.system())
    mention = ticket_make(customer=bob, queue=queue, subject="Question about invoices")
    customer_says(mention, "Also, my printer is fine, just asking about invoices.")
    return {"printer": printer, "refund": refund, "zh": zh, "mention": mention, "billing": billing}


def test_english_words_match_across_their_forms_in_subjects_and_messages(desk, manager):
    assert set(found(manager, "printers")) == {"Printer jam on floor two", "Question about invoices"}
    assert found(manager, "jammed") == ["Printer jam on floor two"]
    assert found(manager, "crushed boxes") == ["Refund for order 1182"]


def test_a_subject_match_ranks_before_a_message_match_and_ties_go_newest_first(desk, manager):
    assert found(manager, "printer") == ["Printer jam on floor two", "Question about invoices"]
    older = ticket_make(subject="Printer jam on floor two")
    Ticket.objects.filter(pk=older.pk).update(updated_at=timezone.now() - timedelta(days=3))
    Ticket.objects.filter(pk=desk["printer"].pk).update(updated_at=timezone.now())
    ranked = [t.pk for t in ticket_list(user=manager, filters=TicketFilters.from_params({"search": "printer jam"}))]
    assert ranked == [desk["printer"].pk, older.pk]


def test_an_explicit_sort_wins_over_the_rank(desk, manager):
    assert found(manager, "printer", sort="subject") == ["Printer jam on floor two", "Question about invoices"]
    assert found(manager, "printer", sort="-subject") == ["Question about invoices", "Printer jam on floor two"]


def test_chinese_terms_match_as_the_knowledge_base_indexes_them(desk, manager):
    assert found(manager, "打印机") == ["打印机无法连接"]
    assert found(manager, "网络") == ["打印机无法连接"]
    assert found(manager, '"无法连接"') == ["打印机无法连接"]
    assert found(manager, "打印台") == []
    # The same pairs as kb.services.search_terms, in the database and for the query.
    text = "我的打印机 printer 坏了"
    with connection.cursor() as cursor:
        cursor.execute("SELECT tsvector_to_array(tickets_search_vector(%s))", [text])
        lexemes = set(cursor.fetchone()[0])
    chinese = {term for term in search_terms(text) if not term.isascii()}
    assert chinese <= lexemes
    assert websearch_text("打印机 -坏了") == ' "打印 印机"  - "坏了" '


def test_internal_notes_and_tags_are_searched_for_agents_only(desk, manager):
    assert found(manager, "shentong") == ["Refund for order 1182"]
    assert found(manager, "wifi-outage") == ["打印机无法连接"]
    customer = desk["refund"].customer
    from tests.factories import UserFactory

    user = UserFactory(username="bob")
    customer.user = user
    customer.save(update_fields=["user"])
    assert found(user, "shentong") == []
    assert found(user, "courier liability") == []
    assert found(user, "crushed") == ["Refund for order 1182"]


def test_access_rules_hold_for_every_match(desk, agent):
    # The agent belongs to "support" only: the refund (billing) is never found, even by its note or number.
    assert "Refund for order 1182" not in found(agent, "refund")
    assert found(agent, "shentong") == []
    assert found(agent, desk["refund"].reference) == []
    assert found(agent, "bob.stone@mail.test") == ["Question about invoices"]


def test_combined_with_status_queue_and_tag_filters(desk, manager):
    assert found(manager, "printer", queue="support") == ["Printer jam on floor two", "Question about invoices"]
    assert found(manager, "refund", queue="support") == []
    assert found(manager, "refund", queue="billing") == ["Refund for order 1182"]
    Ticket.objects.filter(pk=desk["printer"].pk).update(status="solved")
    assert found(manager, "printer", status="solved") == ["Printer jam on floor two"]
    assert found(manager, "连接", tags="wifi-outage") == ["打印机无法连接"]
    assert found(manager, "printer", tags="wifi-outage") == []


def test_a_reference_or_an_address_typed_in_full_comes_first(desk, manager):
    target = desk["mention"]
    customer_says(desk["printer"], f"See also {target.reference} and bob.stone@mail.test")
    refs = [
        t.reference for t in ticket_list(user=manager, filters=TicketFilters.from_params({"search": target.reference}))
    ]
    assert refs[0] == target.reference
    by_mail = found(manager, "bob.stone@mail.test")
    assert set(by_mail[:2]) == {"Refund for order 1182", "Question about invoices"}
    assert "Printer jam on floor two" in by_mail


def test_websearch_syntax_or_not_and_phrases(desk, manager):
    assert set(found(manager, "refund or jam")) == {"Refund for order 1182", "Printer jam on floor two"}
    assert found(manager, "printer -invoices") == ["Printer jam on floor two"]
    assert found(manager, '"floor two"') == ["Printer jam on floor two"]
    assert found(manager, '"two floor"') == []


@pytest.mark.parametrize("term", ['"unbalanced', "or or -", "- & | ! <->", "\x00 \x01", "(((", "the", "x" * 10_240])
def test_malformed_queries_find_nothing_and_never_fail(desk, manager, term):
    assert found(manager, term) == []


def test_documents_follow_every_write(desk, manager):
    ticket = desk["printer"]
    ticket_subject_change(ticket=ticket, subject="Scanner offline", actor=Actor.system())
    assert found(manager, "scanner") == ["Scanner offline"]
    assert "Scanner offline" in found(manager, "printer")  # its message still says printers
    reply = ticket_reply_create(ticket=ticket, author=manager, text="Replaced the toner cartridge.", deliver=False)
    assert found(manager, "cartridge") == ["Scanner offline"]
    ticket_tags_set(ticket=ticket, tags=["hardware"], actor=Actor.system())
    assert found(manager, "hardware") == ["Scanner offline"]
    ticket_tags_set(ticket=ticket, tags=[], actor=Actor.system())
    assert found(manager, "hardware") == []
    Message.objects.filter(pk=reply.pk).delete()
    assert found(manager, "cartridge") == []


def test_a_broad_search_lists_the_same_tickets_newest_first(desk, manager, monkeypatch):
    from servicedesk.tickets import search

    ranked = set(found(manager, "printer"))
    monkeypatch.setattr(search, "DOCUMENT_LIMIT", 0)
    broad = [t.pk for t in ticket_list(user=manager, filters=TicketFilters.from_params({"search": "printer"}))]
    assert {Ticket.objects.get(pk=pk).subject for pk in broad} == ranked
    assert broad == list(
        Ticket.objects.filter(pk__in=broad).order_by("-updated_at", "-id").values_list("pk", flat=True)
    )


def test_a_broad_search_is_paged_without_a_count(desk, manager, client, monkeypatch):
    """Words in more documents than are ranked: listed by their text and paged without a
    count, each page fetched with one row more that tells whether another follows
    ("more than"), on the inbox and in the API; a page past the last is a 404."""
    from servicedesk.core.pagination import CappedPaginator
    from servicedesk.tickets import search

    monkeypatch.setattr(search, "DOCUMENT_LIMIT", 0)
    qs = ticket_list(user=manager, filters=TicketFilters.from_params({"search": "printer"}))
    matching = len(found(manager, "printer"))
    assert matching >= 2
    paginator = CappedPaginator(qs, 1)
    first = paginator.page(1)
    assert (paginator.count, paginator.count_capped, paginator.num_pages, first.has_next()) == (1, True, 2, True)
    last = CappedPaginator(qs, 1)
    page = last.page(matching)
    assert (last.count, last.count_capped, last.num_pages, page.has_next()) == (matching, False, matching, False)
    with pytest.raises(EmptyPage):
        CappedPaginator(qs, 1).page(matching + 1)
    # Unsearched, the same list is counted.
    everything = CappedPaginator(ticket_list(user=manager, filters=TicketFilters.from_params({})), 1)
    assert (everything.count, everything.count_capped, everything.num_pages) == (4, False, 4)
    client.force_login(manager)
    api = client.get("/api/v1/tickets/?search=printer&page_size=1").json()
    assert (api["count"], api["count_capped"], len(api["results"]), bool(api["next"])) == (1, True, 1, True)
    api = client.get(f"/api/v1/tickets/?search=printer&page_size=1&page={matching}").json()
    assert (api["count"], api["count_capped"], api["next"]) == (matching, False, None)
    assert client.get(f"/api/v1/tickets/?search=printer&page_size=1&page={matching + 1}").status_code == 404
    assert client.get("/api/v1/tickets/?search=printer&page=0").status_code == 404
    # Pages reach row UNCOUNTED_ROWS: the last one says "more" but offers no next page; past it, 404.
    monkeypatch.setattr("servicedesk.core.pagination.UNCOUNTED_ROWS", 1)
    deepest = CappedPaginator(qs, 1)
    page = deepest.page(1)
    assert (deepest.count, deepest.count_capped, deepest.num_pages, page.has_next()) == (1, True, 1, False)
    with pytest.raises(EmptyPage):
        CappedPaginator(qs, 1).page(2)
    assert client.get("/api/v1/tickets/?search=printer&page_size=1&page=2").status_code == 404
    api = client.get("/api/v1/tickets/?search=printer&page_size=1").json()
    assert (api["count"], api["count_capped"], api["next"]) == (1, True, None)
    monkeypatch.setattr("servicedesk.core.pagination.UNCOUNTED_ROWS", 1_000)
    page = client.get("/desk/?q=printer", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"{matching} tickets" in page
    monkeypatch.setattr("servicedesk.desk.inbox.PAGE_SIZE", 1)
    page = client.get("/desk/?q=printer", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "More than 1 tickets" in page and "Page 1<" in page and "Page 1 of" not in page
    assert 'rel="next"' in page


def test_a_broad_search_keeps_notes_from_customers(desk, manager, monkeypatch):
    from servicedesk.tickets import search
    from servicedesk.tickets.selectors import ticket_search

    monkeypatch.setattr(search, "DOCUMENT_LIMIT", 0)
    customers = ticket_search("refund", internal=False)
    assert customers.broad
    assert list(Ticket.objects.filter(customers.condition).values_list("subject", flat=True)) == [
        "Refund for order 1182"
    ]
    # The condition a broad search uses: notes count for agents only.
    assert Ticket.objects.filter(search.ticket_text_q("shentong", internal=True)).get() == desk["refund"]
    assert not Ticket.objects.filter(search.ticket_text_q("shentong", internal=False)).exists()
    # A correlated test of each ticket's own documents, never the list of every match.
    sql = str(Ticket.objects.filter(customers.condition).query)
    assert "EXISTS" in sql and "tickets_search_document" in sql


def test_a_name_matching_too_many_to_list_keeps_the_ranked_text(desk, manager, monkeypatch):
    from servicedesk.core.pagination import CappedPaginator
    from servicedesk.tickets import selectors

    ranked = set(found(manager, "printer"))
    monkeypatch.setattr(selectors, "SEARCH_ID_LIST_LIMIT", 0)
    found_search = selectors.ticket_search("printer")
    assert found_search.broad and found_search.ranks is None
    assert set(Ticket.objects.filter(found_search.condition).values_list("subject", flat=True)) == ranked
    named = TicketFilters.from_params({"search": "alice"})
    assert {t.subject for t in ticket_list(user=manager, filters=named)} == {
        "Printer jam on floor two",
        "打印机无法连接",
    }
    assert CappedPaginator(ticket_list(user=manager, filters=named), 25).count == 2


def test_new_agent_sees_nothing_of_other_queues(desk):
    outsider = AgentFactory(username="olga", queues=[QueueFactory(slug="sales", name="Sales")])
    assert found(outsider, "printer") == []
    assert found(outsider, "打印机") == []


def test_a_piece_shorter_than_a_trigram_is_not_looked_for_inside_subjects(desk, manager):
    """Two characters are found as words or Chinese pairs, never by reading every subject."""
    assert found(manager, "打印") == ["打印机无法连接"]
    assert found(manager, "ja") == []  # "jam" holds it, but only as a piece of a word
    assert found(manager, "jam") == ["Printer jam on floor two"]
    with CaptureQueriesContext(connection) as captured:
        found(manager, "ja")
    assert not any('"subject"::text) LIKE' in query["sql"] for query in captured.captured_queries)


def test_a_query_expected_to_be_common_is_listed_without_ranking(desk, manager, monkeypatch):
    """The planner's estimate says "common" and the newest tickets agree: the search goes the
    broad way without reading its documents to rank them; if the newest tickets disagree
    (the estimate was a guess), it is ranked as a rare one is."""
    from servicedesk.tickets import search
    from servicedesk.tickets.selectors import ticket_search

    monkeypatch.setattr(search, "BROAD_ESTIMATE", -1)
    monkeypatch.setattr(search, "DENSE_FOUND", 1)
    with CaptureQueriesContext(connection) as captured:
        common = ticket_search("printer", internal=True)
    assert common.broad and common.ranks is None
    statements = [q["sql"] for q in captured.captured_queries]
    assert len(statements) == 2 and statements[0].startswith("EXPLAIN")
    assert not any("ts_rank_cd" in sql for sql in statements)
    assert {
        Ticket.objects.get(pk=pk).subject for pk in Ticket.objects.filter(common.condition).values_list("pk", flat=True)
    } == set(found(manager, "printer"))
    # Rare among the newest tickets: ranked after all.
    monkeypatch.setattr(search, "DENSE_FOUND", 1_000)
    rare = ticket_search("printer", internal=True)
    assert not rare.broad and rare.ranks
    # Expected rare: one EXPLAIN, then the ranking, as before.
    monkeypatch.setattr(search, "BROAD_ESTIMATE", 10**9)
    with CaptureQueriesContext(connection) as captured:
        assert ticket_search("printer", internal=True).ranks == rare.ranks
    assert sum("count(*) FROM (SELECT t.id" in q["sql"] for q in captured.captured_queries) == 0


def test_a_broad_search_tests_each_ticket_and_is_never_a_join(desk, manager):
    """The broad condition is an EXISTS PostgreSQL cannot turn into a join (OFFSET 0): a list
    walks its sort index and stops when its page is full."""
    from servicedesk.tickets import search

    listed = Ticket.objects.filter(search.ticket_text_q("printer", internal=True)).order_by("-updated_at")[:25]
    sql, params = listed.query.sql_with_params()
    assert "EXISTS(SELECT" in sql and "OFFSET 0)" in sql
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "SubPlan" in plan and "Semi Join" not in plan


def test_a_ranked_search_is_paged_by_its_ids(desk, manager, django_assert_num_queries):
    """A ranked search lists its ordered ids once (which counts them) and fetches the page's
    rows by id, the ids one array parameter rather than one parameter each."""
    from servicedesk.core.pagination import CappedPaginator

    everything = found(manager, "printer")
    qs = ticket_list(user=manager, filters=TicketFilters.from_params({"search": "printer"}))
    assert "= ANY(" in str(qs.query)
    paginator = CappedPaginator(qs, 1)
    with django_assert_num_queries(2 + 2):  # the ids; the page's rows, its tags and its SLA targets
        page = paginator.page(2)
        assert (paginator.count, paginator.count_capped, paginator.num_pages) == (
            len(everything),
            False,
            len(everything),
        )
        assert [t.subject for t in page.object_list] == everything[1:2]
    assert [
        t.subject for n in range(1, len(everything) + 1) for t in CappedPaginator(qs, 1).page(n).object_list
    ] == everything


def test_a_tag_on_many_tickets_is_listed_without_ranking(desk, manager, monkeypatch):
    """A tag's name is several words to the planner, which expects few documents: a search for a
    tag on more tickets than are ranked goes the broad way without reading its documents."""
    from servicedesk.tickets import search
    from servicedesk.tickets.selectors import ticket_search

    for ticket in (desk["printer"], desk["refund"]):
        ticket_tags_set(ticket=ticket, tags=["vip-account"], actor=Actor.system())
    monkeypatch.setattr(search, "DOCUMENT_LIMIT", 1)
    with CaptureQueriesContext(connection) as captured:
        tagged = ticket_search("VIP-account", internal=True)
    assert tagged.broad
    assert not any("ts_rank_cd" in q["sql"] for q in captured.captured_queries)
    assert set(Ticket.objects.filter(tagged.condition)) == {desk["printer"], desk["refund"]}
    # A customer's search never looks at tags.
    assert not ticket_search("VIP-account", internal=False).broad


def test_a_name_shorter_than_a_trigram_is_found_typed_in_full(db, manager):
    """Two characters cannot be looked for inside names by their trigram index: a name typed in
    full (a Chinese name of two characters) is found, a piece of one is not."""
    queue = QueueFactory()
    wang = ticket_make(customer=CustomerFactory(name="王芳", email="wf@example.com"), queue=queue, subject="发票")
    ticket_make(customer=CustomerFactory(name="王芳芳", email="wff@example.com"), queue=queue, subject="退款")
    with CaptureQueriesContext(connection) as captured:
        assert [t.pk for t in ticket_list(user=manager, filters=TicketFilters.from_params({"search": "王芳"}))] == [
            wang.pk
        ]
    assert not any("tickets_identity" in q["sql"] for q in captured.captured_queries)
