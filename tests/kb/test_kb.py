"""The knowledge base: sanitised Markdown, who reads which article on every path, search in English and
Chinese, the desk's editor, votes and views (docs/help-centre.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from servicedesk.kb.models import Article, ArticleImage, ArticleStatus, ArticleVote, Category, SearchQuery
from servicedesk.kb.search import _portable, kb_search
from servicedesk.kb.services import ArticleInput, article_save, articles_visible_to, markdown_html, search_terms
from servicedesk.tickets.services.replies import ticket_reply_create
from tests.channels_app.web.helpers import sign_in
from tests.factories import AgentFactory, CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


@pytest.fixture
def writer(queue):
    return AgentFactory(queues=[queue])


def write(writer, title: str, body: str = "", **kwargs) -> Article:  # type: ignore[no-untyped-def]
    kwargs.setdefault("status", ArticleStatus.PUBLISHED)
    return article_save(data=ArticleInput(title=title, body=body, **kwargs), author=writer)


@pytest.mark.parametrize(
    "markdown, gone",
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src=x onerror="alert(1)">', "<img"),
        ("[click](javascript:alert(1))", 'href="javascript'),
        ('<iframe src="https://evil.example"></iframe>', "<iframe"),
        ("![tracker](https://evil.example/pixel.png)", "evil.example"),
        ('[x](https://ok.example "t")', "javascript"),
    ],
)
def test_markdown_is_rendered_and_sanitised(markdown, gone):
    html = markdown_html(markdown)
    assert gone not in html


def test_markdown_keeps_formatting_links_and_the_articles_own_images():
    html = markdown_html(
        "# Title\n\n**bold** [docs](https://docs.example/a)\n\n![shot](/help/kb/images/abc/)\n\n| a |\n|---|\n| 1 |"
    )
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert 'href="https://docs.example/a"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert '<img src="/help/kb/images/abc/" alt="shot">' in html and "<table>" in html


def test_chinese_is_indexed_as_character_pairs_and_english_as_words():
    assert search_terms("Printer 打印机着火了!") == ["printer", "打印", "印机", "机着", "着火", "火了"]


def test_who_reads_which_article_on_every_path(client, writer):
    published = write(writer, "Reset your password")
    internal = write(writer, "Internal escalation list", status=ArticleStatus.INTERNAL)
    draft = write(writer, "Draft about passwords", status=ArticleStatus.DRAFT)
    archived = write(writer, "Old password policy", status=ArticleStatus.ARCHIVED)
    later = write(writer, "Password changes next year", publish_at=timezone.now() + timedelta(days=1))
    hidden = (internal, draft, archived, later)
    customer = CustomerFactory()
    sign_in(client, customer)  # a signed-in customer reads what the public reads
    assert client.get(f"/help/kb/articles/{published.pk}/").status_code == 200
    for article in hidden:
        assert client.get(f"/help/kb/articles/{article.pk}/").status_code == 404
        assert client.get(f"/api/v1/kb/articles/{article.pk}/").status_code == 404
    listed = [a["id"] for a in client.get("/api/v1/kb/articles/").json()["results"]]
    assert listed == [published.pk]
    found = [hit["id"] for hit in client.get("/api/v1/kb/search/?q=password").json()]
    assert found == [published.pk]
    assert "body" not in client.get(f"/api/v1/kb/articles/{published.pk}/").json()
    page = client.get("/help/kb/search/?q=password").content.decode()
    assert "Reset your" in page and "Internal" not in page and "Draft" not in page
    # Agents also read internal articles in the help centre and search; drafts stay in the desk.
    client.force_login(writer)
    assert client.get(f"/help/kb/articles/{internal.pk}/").status_code == 200
    assert client.get(f"/help/kb/articles/{draft.pk}/").status_code == 404
    found = {hit["id"] for hit in client.get("/api/v1/kb/search/?q=password escalation").json()}
    assert found == {published.pk, internal.pk}


def test_search_ranks_finds_word_forms_and_chinese_and_marks_the_terms(writer):
    printer = write(writer, "Printer on fire", "If your printers catch fire, unplug them. <b>Never</b> use water.")
    write(writer, "Paper jams", "Open the tray. A printer may jam.")
    chinese = write(writer, "打印机着火了怎么办", "请立即拔掉打印机的电源。", language="zh-hans")
    visible = articles_visible_to(None)
    hits = kb_search(visible, "printing fire")
    assert hits[0].article.pk == printer.pk
    # The source's raw HTML is text: shown as written, escaped once, never as markup.
    assert "<mark>fire</mark>" in hits[0].title and "&lt;b&gt;Never&lt;/b&gt;" in hits[0].snippet
    assert "<b>" not in hits[0].snippet and "&amp;" not in hits[0].snippet
    assert [hit.article.pk for hit in kb_search(visible, "打印机")] == [chinese.pk]
    assert "<mark>打印</mark>" in kb_search(visible, "打印机")[0].title
    # The simpler matching of databases without full-text search finds the same articles by whole terms.
    assert [a.pk for a in _portable(visible, search_terms("打印机"), 10)] == [chinese.pk]
    assert printer.pk in [a.pk for a in _portable(visible, ["fire"], 10)]


def test_searches_without_a_result_are_counted_per_term(client, writer):
    write(writer, "Reset your password")
    client.get("/api/v1/kb/search/?q=Refund policy")
    client.get("/help/kb/search/?q=refund  POLICY")
    client.get("/api/v1/kb/search/?q=password")
    gaps = list(SearchQuery.objects.filter(results=0).values_list("term", flat=True))
    assert gaps == ["refund policy", "refund policy"]


@pytest.mark.parametrize("query", ["", "x" * 201])
def test_a_bad_search_is_400(client, query):
    response = client.get("/api/v1/kb/search/", {"q": query})
    assert response.status_code == 400 and "q" in response.json()


def test_the_search_uses_the_index_on_postgresql(writer):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'kb_article_search'")
        assert "gin (search_vector)" in cursor.fetchone()[0]
    # The trigger keeps the vector whatever writes the row (a bulk insert, an update of the text).
    article = write(writer, "Printer on fire", "Unplug it.")
    Article.objects.filter(pk=article.pk).update(search_text="toaster smoke")
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_vector::text FROM kb_article WHERE id = %s", [article.pk])
        assert cursor.fetchone()[0] == "'smoke':2 'toaster':1"


def test_a_vote_counts_once_per_browser_and_views_count(client, writer):
    article = write(writer, "Reset your password")
    for _ in range(2):
        client.get(f"/help/kb/articles/{article.pk}/")
    client.post(f"/help/kb/articles/{article.pk}/vote/", {"helpful": "no", "reason": "No screenshots"})
    client.post(f"/help/kb/articles/{article.pk}/vote/", {"helpful": "no"})
    article.refresh_from_db()
    assert (article.views, article.helpful_yes, article.helpful_no) == (2, 0, 1)
    assert ArticleVote.objects.get().reason == "No screenshots"
    assert client.post(f"/help/kb/articles/{article.pk}/vote/", {"helpful": "maybe"}).status_code == 302
    assert ArticleVote.objects.count() == 1


def test_agents_write_articles_and_translations_in_the_desk(client, writer):
    Category.objects.create(slug="accounts", name="Accounts", name_zh_hans="账户")
    client.force_login(writer)
    response = client.post(
        "/desk/kb/new/",
        {
            "title": "Reset your password",
            "body": "1. Open **Settings**",
            "language": "en",
            "status": "published",
            "category": Category.objects.get().pk,
        },
    )
    original = Article.objects.get()
    assert response.status_code == 302 and original.body_html.startswith("<ol>")
    client.post(
        "/desk/kb/new/",
        {
            "title": "重置密码",
            "body": "打开设置",
            "language": "zh-hans",
            "status": "published",
            "translation_of": original.pk,
        },
    )
    translation = Article.objects.get(language="zh-hans")
    assert translation.translation_of_id == original.pk
    # A second Chinese translation of the same article is refused with the field's error.
    again = client.post(
        "/desk/kb/new/",
        {"title": "又一个", "body": "x", "language": "zh-hans", "status": "draft", "translation_of": original.pk},
    )
    assert again.status_code == 400 and Article.objects.count() == 2
    page = client.get(f"/help/kb/articles/{original.pk}/").content.decode()
    assert f'href="/help/kb/articles/{translation.pk}/"' in page
    assert client.post("/desk/kb/new/", {"title": "", "language": "en", "status": "draft"}).status_code == 400


def test_images_are_checked_by_their_bytes_and_served_to_whoever_reads_the_article(client, writer):
    article = write(writer, "With a picture", status=ArticleStatus.DRAFT)
    client.force_login(writer)
    client.post(f"/desk/kb/{article.pk}/images/", {"image": SimpleUploadedFile("x.png", b"<script>", "image/png")})
    assert not ArticleImage.objects.exists()
    client.post(f"/desk/kb/{article.pk}/images/", {"image": SimpleUploadedFile("shot.png", PNG, "image/png")})
    image = ArticleImage.objects.get()
    url = f"/help/kb/images/{image.key}/"
    assert client.get(url).status_code == 200
    client.logout()
    assert client.get(url).status_code == 404  # the article is a draft
    Article.objects.filter(pk=article.pk).update(status=ArticleStatus.PUBLISHED)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_a_draft_from_a_tickets_answer(client, writer, queue):
    ticket = ticket_make(queue=queue, subject="Printer on fire")
    answer = ticket_reply_create(ticket=ticket, author=writer, text="Unplug it and call us.", deliver=False)
    client.force_login(writer)
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert f'action="/desk/kb/from-ticket/{ticket.reference}/{answer.pk}/"' in page and "data-kb-insert" in page
    response = client.post(f"/desk/kb/from-ticket/{ticket.reference}/{answer.pk}/")
    draft = Article.objects.get()
    assert response.status_code == 302 and (draft.title, draft.status, draft.source_ticket_id) == (
        "Printer on fire",
        "draft",
        ticket.pk,
    )
    stranger = AgentFactory()
    client.force_login(stranger)
    assert client.post(f"/desk/kb/from-ticket/{ticket.reference}/{answer.pk}/").status_code == 404


def test_the_desk_and_the_writing_api_are_for_agents_only(client, writer):
    customer = CustomerFactory()
    sign_in(client, customer)
    assert client.get("/desk/kb/").status_code == 302
    assert client.post("/api/v1/kb/articles/", {"title": "Spam"}, content_type="application/json").status_code in (
        401,
        403,
    )
    client.force_login(writer)
    created = client.post(
        "/api/v1/kb/articles/",
        {"title": "API article", "body": "<script>x</script>*hi*", "status": "published"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    data = created.json()
    assert "<script>" not in data["body_html"] and "<em>hi</em>" in data["body_html"]
    bad = client.patch(f"/api/v1/kb/articles/{data['id']}/", {"language": "fr"}, content_type="application/json")
    assert bad.status_code == 400 and "language" in bad.json()
    assert (
        client.patch(
            f"/api/v1/kb/articles/{data['id']}/", {"status": "archived"}, content_type="application/json"
        ).json()["status"]
        == "archived"
    )


def test_the_home_page_shows_each_categorys_most_read_and_a_category_page_all_of_them(client, writer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    category = Category.objects.create(slug="printing", name="Printing", name_zh_hans="打印")
    for n in range(15):
        write(writer, f"Printer tip {n:02d}", "Text.", category=category)
    write(writer, "Printer draft", status=ArticleStatus.DRAFT, category=category)
    Article.objects.filter(title="Printer tip 14").update(views=99)

    def home() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as queries:
            body = client.get("/help/kb/").content.decode()
        return body, len(queries.captured_queries)

    page, counted = home()
    assert page.count("Printer tip") == 10 and page.index("Printer tip 14") < page.index("Printer tip 00")
    assert "All 15 articles" in page and "Printer draft" not in page
    for n in range(15, 40):
        write(writer, f"Printer tip {n:02d}", "Text.", category=category)
    assert home()[1] == counted
    listing = client.get("/help/kb/categories/printing/").content.decode()
    assert listing.count("Printer tip") == 40 and "Printer draft" not in listing
    assert client.get("/help/kb/categories/nope/").status_code == 404
