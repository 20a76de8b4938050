"""The agent workspace from the keyboard only (static/desk/keys.js, the palette and canned replies)."""

from __future__ import annotations

import pytest

from servicedesk.macros.models import Scope
from servicedesk.macros.services import CannedReplyInput, MacroInput, canned_reply_save, macro_save
from servicedesk.tickets.models import Message, Ticket
from tests.browser.test_reports import collect_errors, sign_in
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def current_rows(page) -> list[str]:
    """The references of the inbox rows marked current (there is at most one)."""
    return page.eval_on_selector_all(
        "tr[data-row].keys-current[aria-current=true]", "rows => rows.map(row => row.dataset.reference)"
    )


def focused(page) -> str:
    """The focused element, as ``tag#id.class`` and its text for a link."""
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.tagName.toLowerCase() + '#' + e.id + '.' + e.className + ':' + (e.tagName === 'A' ? e.textContent : ''); }"
    )


def test_inbox_to_reply_macro_and_next_ticket_from_the_keyboard(browser, live_server, tmp_path):
    queue = QueueFactory(slug="support", name="Support")
    ann = AgentFactory(username="ann", display_name="Ann Agent", queues=[queue], password="ann-secret-42")
    alice = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    tickets = [
        ticket_make(customer=alice, queue=queue, subject="Charged twice"),
        ticket_make(customer=alice, queue=queue, subject="Invoice address"),
    ]
    canned_reply_save(
        data=CannedReplyInput(
            name="Refund on its way",
            scope=Scope.PERSONAL,
            queue=None,
            text="Hello {{ customer.first_name }}, the refund is on its way.",
            translations=None,
        ),
        user=ann,
    )
    macro = macro_save(
        data=MacroInput(
            name="Escalate billing",
            scope=Scope.PERSONAL,
            queue=None,
            actions=[{"type": "priority", "priority": "high"}, {"type": "tags", "mode": "add", "tags": ["billing"]}],
        ),
        user=ann,
    )

    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "ann", "ann-secret-42", then="/desk/")
    references = page.eval_on_selector_all("tr[data-row]", "rows => rows.map(row => row.dataset.reference)")
    assert sorted(references) == sorted(t.reference for t in tickets)
    assert current_rows(page) == []

    # j and k move the current row, the focus on its link; x ticks and unticks it.
    page.keyboard.press("j")
    assert current_rows(page) == [references[0]]
    assert focused(page) == f"a#.ticket-link:{references[0]}"
    page.keyboard.press("j")
    assert current_rows(page) == [references[1]]
    page.keyboard.press("j")  # the last row stays current
    assert current_rows(page) == [references[1]]
    page.keyboard.press("k")
    assert current_rows(page) == [references[0]]
    page.keyboard.press("x")
    assert page.is_checked(f"tr[data-reference='{references[0]}'] input.bulk-select")
    assert not page.is_checked(f"tr[data-reference='{references[1]}'] input.bulk-select")
    page.keyboard.press("x")
    assert not page.is_checked(f"tr[data-reference='{references[0]}'] input.bulk-select")
    assert focused(page) == f"a#.ticket-link:{references[0]}"

    # Typing in the search field is typing: j and k move nothing.
    page.focus("#filter-q")
    page.keyboard.type("jk")
    assert page.input_value("#filter-q") == "jk"
    assert current_rows(page) == [references[0]]
    page.keyboard.press("Escape")  # leaves the field
    page.keyboard.press("j")
    assert current_rows(page) == [references[1]]
    page.keyboard.press("k")

    # Enter opens the current ticket.
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/tickets/{references[0]}/")
    first = Ticket.objects.get(reference=references[0])

    # n chooses a note, r a public reply, each with the focus in the text.
    page.keyboard.press("n")
    assert page.is_checked("#reply-form input[name=kind][value=note]")
    assert focused(page).startswith("textarea#reply_text.")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    assert page.is_checked("#reply-form input[name=kind][value=reply]")
    assert focused(page).startswith("textarea#reply_text.")

    # Every shortcut letter typed in the reply is text, and nothing else happens.
    page.keyboard.type("jk nasty mix? Enter x")
    assert page.input_value("#reply_text") == "jk nasty mix? Enter x"
    assert focused(page).startswith("textarea#reply_text.")
    assert page.is_checked("#reply-form input[name=kind][value=reply]")
    assert page.is_hidden("#command-palette")
    assert not page.evaluate("document.getElementById('keyboard-shortcuts').open")
    assert page.url == f"{live_server.url}/desk/tickets/{references[0]}/"

    # A canned reply: "/" and its name, Enter inserts it filled in for Alice.
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.type("/refund")
    page.wait_for_selector("#canned-popup .canned-option")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('reply_text').value.includes('refund is on its way')")
    assert page.input_value("#reply_text") == "Hello Alice, the refund is on its way."

    # Ctrl+Enter sends it.
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("article.msg.msg-public_agent")
    reply = Message.objects.get(ticket=first, kind="public_agent")
    assert reply.text == "Hello Alice, the refund is on its way."
    assert reply.author_user_id == ann.pk
    page.screenshot(path=str(tmp_path / "replied.png"), full_page=True)

    # The macro through the command palette.
    page.keyboard.press("Control+k")
    page.wait_for_selector("#command-palette-input:focus")
    page.keyboard.type("escalate billing")
    assert (
        page.get_attribute(".command-palette-option[aria-selected=true]", "data-command") == f"apply-macro-{macro.pk}"
    )
    page.keyboard.press("Enter")
    page.wait_for_selector("#ticket-priority:has-text('High')")
    first.refresh_from_db()
    assert first.priority == "high"
    assert sorted(first.tags.values_list("name", flat=True)) == ["billing"]

    # Back to the inbox through the palette, and on to the next ticket with j.
    page.keyboard.press("Control+k")
    page.wait_for_selector("#command-palette-input:focus")
    page.keyboard.type("inbox")
    assert page.get_attribute(".command-palette-option[aria-selected=true]", "data-command") == "go-inbox"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/")
    order = page.eval_on_selector_all("tr[data-row]", "rows => rows.map(row => row.dataset.reference)")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert current_rows(page) == [order[1]]
    target = order[1]
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/tickets/{target}/")
    assert errors == []


def test_question_mark_lists_the_shortcuts_and_escape_closes_the_list(browser, live_server):
    queue = QueueFactory(slug="support", name="Support")
    ann = AgentFactory(username="ann", queues=[queue], password="ann-secret-42")
    ticket = ticket_make(queue=queue, subject="Printer on fire")
    macro = macro_save(
        data=MacroInput(
            name="Close as done", scope=Scope.PERSONAL, queue=None, actions=[{"type": "priority", "priority": "low"}]
        ),
        user=ann,
    )
    other = macro_save(
        data=MacroInput(
            name="Inbox zero", scope=Scope.PERSONAL, queue=None, actions=[{"type": "priority", "priority": "high"}]
        ),
        user=ann,
    )
    path = f"/desk/tickets/{ticket.reference}/"
    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "ann", "ann-secret-42", then=path)

    dialog = page.locator("#keyboard-shortcuts")
    assert not dialog.is_visible()
    assert dialog.get_attribute("role") == "dialog" and dialog.get_attribute("aria-modal") == "true"

    # From a field: a, s, t focus the properties; "?" typed there is text.
    page.keyboard.press("a")
    assert focused(page).startswith("select#props_assignee.")
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    assert focused(page).startswith("select#props_status.")
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    assert focused(page).startswith("input#props_tags.")
    page.keyboard.type("?")
    assert not dialog.is_visible()
    assert page.input_value("#props_tags").endswith("?")

    # "?" opens the list, modal, with the focus in it; Escape closes it and gives the focus back.
    page.keyboard.press("Escape")
    page.focus("#ticket-sla a, .ticket-main a[href], main a[href]")
    before = focused(page)
    page.keyboard.press("?")
    assert dialog.is_visible()
    assert "Keyboard shortcuts" in dialog.inner_text()
    assert "Next / previous ticket" in dialog.inner_text()
    assert page.evaluate("document.getElementById('keyboard-shortcuts').contains(document.activeElement)")
    page.keyboard.press("r")  # shortcuts behind the dialog are off while it is open
    assert page.evaluate("document.getElementById('keyboard-shortcuts').contains(document.activeElement)")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert focused(page) == before

    # m opens the palette through its own interface, limited to applying this ticket's macros.
    page.evaluate(
        "() => { window.syntheticKeys = 0; document.addEventListener('keydown',"
        " (e) => { if (!e.isTrusted) window.syntheticKeys += 1; }, true); }"
    )
    page.keyboard.press("m")
    page.wait_for_selector("#command-palette-input:focus")
    assert page.evaluate("window.syntheticKeys") == 0  # no Ctrl+K sent on the keyboard's behalf
    assert page.evaluate("window.SDPalette.isOpen()") is True
    assert page.get_attribute("#command-palette", "data-kind") == "apply-macro"
    assert page.input_value("#command-palette-input") == ""
    commands = page.eval_on_selector_all(".command-palette-option", "options => options.map(o => o.dataset.command)")
    assert commands == [f"apply-macro-{macro.pk}", f"apply-macro-{other.pk}"]
    assert page.get_attribute(".command-palette-option[aria-selected=true]", "data-command") == commands[0]
    # "inbox" finds the macro of that name, not the way to the inbox.
    page.keyboard.type("inbox")
    commands = page.eval_on_selector_all(".command-palette-option", "options => options.map(o => o.dataset.command)")
    assert commands == [f"apply-macro-{other.pk}"]
    # Backspace in the empty field shows every command again.
    for _letter in "inbox":
        page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    assert page.get_attribute("#command-palette", "data-kind") == ""
    commands = page.eval_on_selector_all(".command-palette-option", "options => options.map(o => o.dataset.command)")
    assert {f"preview-macro-{macro.pk}", "go-inbox"} <= set(commands)
    page.keyboard.press("Escape")
    assert page.is_hidden("#command-palette")
    assert page.evaluate("window.SDPalette.isOpen()") is False

    # m again, Enter applies the first macro to the ticket.
    page.keyboard.press("m")
    page.wait_for_selector("#command-palette-input:focus")
    page.keyboard.press("Enter")
    page.wait_for_selector("#ticket-priority:has-text('Low')")
    ticket.refresh_from_db()
    assert ticket.priority == "low"
    assert errors == []


def test_the_canned_list_stays_open_when_the_focus_comes_straight_back(browser, live_server):
    """A blur of the reply text closes the canned replies' list 150 ms later, unless the focus is
    back by then: the list stays, and Enter inserts (it wrote a new line when the list closed)."""
    queue = QueueFactory(slug="support", name="Support")
    ann = AgentFactory(username="ann", queues=[queue], password="ann-secret-42")
    alice = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    ticket = ticket_make(customer=alice, queue=queue, subject="Charged twice")
    canned_reply_save(
        data=CannedReplyInput(
            name="Refund on its way",
            scope=Scope.PERSONAL,
            queue=None,
            text="The refund is on its way.",
            translations=None,
        ),
        user=ann,
    )
    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "ann", "ann-secret-42", then=f"/desk/tickets/{ticket.reference}/")
    page.focus("#reply_text")
    page.keyboard.type("/refund")
    page.wait_for_selector("#canned-popup .canned-option")

    # The focus leaves and comes back at once; 150 ms on, the list is still open.
    page.evaluate("() => { const t = document.getElementById('reply_text'); t.blur(); t.focus(); }")
    page.wait_for_timeout(400)
    assert page.is_visible("#canned-popup")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('reply_text').value === 'The refund is on its way.'")

    # Leaving for good closes it.
    page.keyboard.type(" /refund")
    page.wait_for_selector("#canned-popup .canned-option")
    page.evaluate("() => document.getElementById('reply_text').blur()")
    page.wait_for_selector("#canned-popup", state="hidden")
    assert errors == []
