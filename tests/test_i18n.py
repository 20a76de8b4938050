"""English and Simplified Chinese: every marked string is translated, and the UI switches."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

LOCALE = Path(settings.BASE_DIR) / "locale"


def po_entries(path: Path) -> list[tuple[str, str, bool]]:
    """(msgid, msgstr, fuzzy) for each entry of a PO file, plural forms folded in."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        fuzzy = any(ln.startswith("#,") and "fuzzy" in ln for ln in lines)
        current, parts = None, {"msgctxt": "", "msgid": "", "msgstr": ""}
        for ln in lines:
            if ln.startswith("#"):
                continue
            match = re.match(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?) "(.*)"$', ln)
            if match:
                current = "msgstr" if match.group(1).startswith("msgstr") else match.group(1).replace("_plural", "")
                if match.group(1) == "msgid_plural":
                    continue
                parts[current] += match.group(2)
            elif ln.startswith('"') and current:
                parts[current] += ln[1:-1]
        if parts["msgid"]:
            # A message with a context is looked up as gettext stores it: "context\x04message".
            msgid = f"{parts['msgctxt']}\x04{parts['msgid']}" if parts["msgctxt"] else parts["msgid"]
            entries.append((msgid, parts["msgstr"], fuzzy))
    return entries


def test_every_marked_string_has_a_chinese_translation(tmp_path):
    """Extract the strings from the code as it is now (in a copy of the tree, so the
    shipped catalogue is untouched) and compare with the shipped translations."""
    if shutil.which("xgettext") is None:
        pytest.fail("gettext is needed to extract messages (scripts/test installs it).")
    root = Path(settings.BASE_DIR)
    tree = tmp_path / "tree"
    for name in ("servicedesk", "channels_app", "reports", "locale"):
        shutil.copytree(root / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(root / "manage.py", tree / "manage.py")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "-v", "0"],
        cwd=tree,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test"},
    )
    entries = po_entries(tree / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    assert len(entries) > 250
    missing = [msgid for msgid, msgstr, fuzzy in entries if not msgstr or fuzzy]
    assert missing == []


def test_compiled_catalogue_matches_the_source():
    po = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po"
    mo = po.with_suffix(".mo")
    assert mo.exists() and mo.stat().st_size > 10_000
    import gettext

    catalogue = gettext.GNUTranslations(mo.open("rb"))
    # Plural entries are looked up as plurals: gettext() finds them only on some Python versions.
    plurals = set(re.findall(r'^msgid "(.+)"\nmsgid_plural ', po.read_text(encoding="utf-8"), re.MULTILINE))
    assert "%(counter)s message" in plurals
    for msgid, msgstr, _fuzzy in po_entries(po):
        if "\\" in msgid:
            continue  # escapes are compared in their decoded form by gettext itself
        found = catalogue.ngettext(msgid, msgid, 1) if msgid in plurals else catalogue.gettext(msgid)
        assert found == msgstr


@pytest.mark.parametrize(
    ("path", "english", "chinese"),
    [
        ("/help/contact/", "Send", "发送"),
        ("/desk/login/", "Sign in", "登录"),
    ],
)
def test_pages_follow_the_browser_language(client, path, english, chinese):
    en = client.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    zh = client.get(path, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert english in en and chinese not in en
    assert chinese in zh and 'lang="zh-hans"' in zh


def test_language_switch_is_remembered(client):
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/help/contact/"})
    assert response.status_code == 302 and response["Location"] == "/help/contact/"
    page = client.get("/help/contact/").content.decode()
    assert 'lang="zh-hans"' in page and "发送" in page
    client.post("/i18n/setlang/", {"language": "en", "next": "/help/contact/"})
    assert 'lang="en"' in client.get("/help/contact/").content.decode()


def test_service_errors_are_translated():
    from django.utils import translation

    from servicedesk.core.errors import ApplicationError
    from servicedesk.tickets.services.customers import identity_normalize

    with translation.override("zh-hans"), pytest.raises(ApplicationError) as excinfo:
        identity_normalize(kind="email", value="nope")
    assert excinfo.value.message != "Enter a valid email address."
    assert re.search(r"[\u4e00-\u9fff]", excinfo.value.message)
