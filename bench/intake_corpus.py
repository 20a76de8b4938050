# ruff: noqa: RUF001  (real Chinese, Japanese and Russian text with its own punctuation)
"""A deterministic corpus of support mail for bench_intake.py: a month of a real support mailbox.

    .venv/bin/python bench/intake_corpus.py --out bench/out/intake-corpus          # 2,061 mails, seed 13

Writes one ``NNNNN-<kind>.eml`` per mail (the order is the arrival order) and
``manifest.json`` (kind, sender, Message-ID and the ticket reference the mail
is expected to open or join when the corpus is taken in order into an empty
desk). The same seed always gives the same bytes.

What is in it (counts at the default size):

- new mails from about 600 customers, each writing in one language, charset
  and mail program: UTF-8 (quoted-printable, base64, 8 bit), ISO-8859-1,
  Windows-1252, GBK, Big5, ISO-2022-JP and KOI8-R, with RFC 2047 encoded
  subjects and names; plain text, multipart/alternative, HTML only; a few
  with small attachments (PNG, PDF, CSV, text; an RFC 2231 file name);
- replies by the same customer: ``Re: [SD-n] ...`` with In-Reply-To and
  References to the earlier corpus mail and the quoted history, or the
  subject tag alone (a webmail that drops the headers);
- the subject tag of someone else's ticket from a stranger (no thread
  headers: opens a new ticket), and colleagues answering to all (thread
  headers, another address);
- automatic mail: out-of-office replies (``Auto-Submitted: auto-replied``,
  half of them with the customer's subject tag), bulk mail and newsletters
  (``Precedence: bulk``, ``List-Id``, ``List-Unsubscribe``);
- the same mail delivered twice by another route (the same Message-ID, one
  more ``Received`` line: other bytes);
- delivery reports for mail the desk never sent (kept in the quarantine),
  mail without a sender (quarantine);
- one hostile mail: 8-bit GBK bytes in the headers and the body, no charset
  declared anywhere.
"""

from __future__ import annotations

import argparse
import base64
import json
import quopri
import random
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
DEFAULT_COUNT = 2061
DEFAULT_SENDERS = 600
DEFAULT_SEED = 13
SUPPORT = "support@servicedesk.example"
REFERENCE_OFFSET = 1000  # SERVICEDESK["REFERENCE_OFFSET"]: ticket 1 is SD-1001
START = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
SPAN = timedelta(days=30)

# Share of each kind among the mails that are not new ones (the rest are new).
SHARES = {
    "reply": 0.185,
    "reply_tag_only": 0.025,
    "reply_all_colleague": 0.008,
    "stranger_tag": 0.015,
    "out_of_office": 0.03,
    "bulk": 0.034,
    "redelivered": 0.006,
    "bounce": 0.006,
    "no_sender": 0.0015,
}

# --- Languages ----------------------------------------------------------------------------------------------

LANGUAGES: dict[str, dict[str, Any]] = {
    "en": {
        "first": ["James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Karen", "Daniel", "Emily",
                  "Thomas", "Laura", "Chris", "Anna", "Peter", "Helen", "Mark", "Susan", "Paul", "Rachel"],
        "last": ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Walker", "Wright", "Hughes",
                 "O'Brien", "Murphy", "Kelly", "Clarke", "Hall", "Green", "Baker", "Turner", "Cooper", "Ward"],
        "subjects": ["Cannot log in to my account", "Invoice {n} is wrong", "Printer on floor {n} jammed again",
                     "Password reset link expired", "Order {n} not delivered", "VPN drops every few minutes",
                     "Question about my subscription", "Refund for order {n}", "Export to Excel fails",
                     "Two-factor code never arrives", "Request: new laptop for a starter", "App crashes on start",
                     "Wrong address on delivery {n}", "Cannot attach files in the portal", "Licence renewal"],
        "lines": ["Hello,", "Hi team,", "Good morning,", "Since this morning I cannot get past the login page.",
                  "The invoice shows the wrong VAT rate and the wrong billing address.",
                  "I tried clearing the cache and another browser, nothing helps.",
                  "Could you please have a look as soon as possible? We have a deadline on Friday.",
                  "The error message says \"Something went wrong (code {n})\".",
                  "It worked fine last week, nothing changed on our side as far as I know.",
                  "Please find the details below.", "Attached is a screenshot of what I see.",
                  "Our customer number is {n}.", "Thanks in advance for your help."],
        "closing": ["Best regards,", "Kind regards,", "Thanks,", "Cheers,"],
        "reply": ["Thanks for the quick answer. Unfortunately it still does not work.",
                  "That fixed it, thank you! You can close the ticket.",
                  "I tried what you suggested, here is what happens now:",
                  "Any news on this? It is still blocking us."],
        "re": "Re: ", "wrote": "On {date}, {name} wrote:",
        "oof": ("Automatic reply: ", "I am out of the office until {day} with limited access to email."),
        "charsets": [("utf-8", 0.55), ("us-ascii", 0.2), ("windows-1252", 0.15), ("iso-8859-1", 0.1)],
    },
    "de": {
        "first": ["Jürgen", "Björn", "Käthe", "Lüder", "Sören", "Günther", "Jörg", "Renée", "Grete", "Ulrich"],
        "last": ["Müller", "Schäfer", "Größ", "Köhler", "Weiß", "Bäcker", "Jäger", "Möller", "Hoffmann", "Schröder"],
        "subjects": ["Rechnung {n} ist falsch", "Drucker im Büro {n} funktioniert nicht", "Zugang gesperrt",
                     "Lieferung {n} nicht angekommen", "Frage zur Kündigung", "Gebühr doppelt abgebucht"],
        "lines": ["Sehr geehrte Damen und Herren,", "Hallo zusammen,",
                  "seit heute früh kann ich mich nicht mehr anmelden.",
                  "Die Rechnung enthält den falschen Betrag: 1.234,56 € statt 1.134,56 €.",
                  "Bitte prüfen Sie das möglichst schnell, wir müssen bis Freitag abschließen.",
                  "Ich habe es mit einem anderen Browser versucht, ohne Erfolg.", "Unsere Kundennummer ist {n}."],
        "closing": ["Mit freundlichen Grüßen", "Viele Grüße", "Beste Grüße"],
        "reply": ["Danke für die schnelle Antwort, leider besteht das Problem weiterhin.",
                  "Jetzt funktioniert es, vielen Dank!", "Gibt es schon Neuigkeiten?"],
        "re": "AW: ", "wrote": "Am {date} schrieb {name}:",
        "oof": ("Abwesenheitsnotiz: ", "Ich bin bis {day} nicht im Büro und lese meine E-Mails nur eingeschränkt."),
        "charsets": [("iso-8859-1", 0.4), ("windows-1252", 0.25), ("utf-8", 0.35)],
    },
    "fr": {
        "first": ["Hélène", "François", "Zoé", "Jérôme", "Céline", "Benoît", "Amélie", "Gaël", "Noël", "Thérèse"],
        "last": ["Lefèvre", "Dupré", "Mercier", "Lemaître", "Bérenger", "Chevalier", "Fournier", "Gérard"],
        "subjects": ["Problème de connexion", "Facture {n} erronée", "Commande {n} non reçue",
                     "Demande de remboursement", "Question sur mon abonnement", "Accès refusé à l'espace client"],
        "lines": ["Bonjour,", "Madame, Monsieur,", "depuis ce matin je ne peux plus accéder à mon compte.",
                  "La facture indique un montant erroné de 250 € au lieu de 205 €.",
                  "Pourriez-vous vérifier rapidement ? C'est très gênant.", "Mon numéro de client est {n}.",
                  "Merci d'avance pour votre aide."],
        "closing": ["Cordialement,", "Bien à vous,", "Merci beaucoup,"],
        "reply": ["Merci pour votre réponse rapide, mais le problème persiste.",
                  "C'est réglé, merci beaucoup !", "Avez-vous du nouveau ?"],
        "re": "RE: ", "wrote": "Le {date}, {name} a écrit :",
        "oof": ("Réponse automatique : ", "Je suis absente jusqu'au {day}, avec un accès limité à ma messagerie."),
        "charsets": [("iso-8859-1", 0.35), ("windows-1252", 0.35), ("utf-8", 0.3)],
    },
    "zh": {
        "first": ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英"],
        "last": ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭"],
        "subjects": ["无法登录账户", "发票{n}金额有误", "订单{n}还没有收到", "打印机又卡纸了", "申请退款",
                     "密码重置链接失效", "导出报表时报错", "关于续费的问题", "双重验证短信收不到"],
        "lines": ["您好，", "你好，", "从今天早上开始我无法登录系统，一直提示密码错误。",
                  "发票上的金额和合同不一致，请帮忙核实。", "我已经清除了浏览器缓存，也换了电脑，还是不行。",
                  "请尽快处理，我们周五之前必须完成结算。", "我们的客户编号是{n}。", "附件是错误页面的截图。",
                  "谢谢！"],
        "closing": ["此致", "谢谢", "祝好"],
        "reply": ["感谢您的回复，但问题依然存在。", "现在可以了，非常感谢！可以关闭工单。", "请问有进展吗？"],
        "re": "回复：", "wrote": "在 {date}，{name} 写道：",
        "oof": ("自动回复：", "我正在休假，{day}返回，期间邮件处理可能延迟。"),
        "charsets": [("gbk", 0.6), ("utf-8", 0.4)],
    },
    "zh_tw": {
        "first": ["志明", "春嬌", "家豪", "淑芬", "建宏", "美玲", "俊傑", "怡君"],
        "last": ["陳", "林", "黃", "張", "李", "王", "吳", "劉"],
        "subjects": ["無法登入帳戶", "發票{n}金額錯誤", "訂單{n}尚未收到", "申請退款", "關於續約的問題"],
        "lines": ["您好，", "從今天早上開始無法登入系統。", "發票上的金額與合約不符，請協助確認。",
                  "已經清除瀏覽器快取，問題仍然存在。", "請盡快處理，謝謝。", "我們的客戶編號是{n}。"],
        "closing": ["敬祝 商祺", "謝謝"],
        "reply": ["謝謝您的回覆，但問題仍然存在。", "現在正常了，非常感謝！"],
        "re": "回覆：", "wrote": "{name} 於 {date} 寫道：",
        "oof": ("自動回覆：", "本人休假中，{day}返回。"),
        "charsets": [("big5", 0.8), ("utf-8", 0.2)],
    },
    "ja": {
        "first": ["太郎", "花子", "健", "さくら", "翔", "美咲", "大輔", "陽子"],
        "last": ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"],
        "subjects": ["ログインできません", "請求書{n}の金額について", "注文{n}が届いていません", "返金のお願い",
                     "パスワード再設定のリンクが無効です"],
        "lines": ["お世話になっております。", "今朝からシステムにログインできなくなりました。",
                  "請求書の金額が契約と異なっているようです。", "ブラウザのキャッシュを削除しましたが改善しません。",
                  "お手数ですが、ご確認のほどよろしくお願いいたします。", "顧客番号は{n}です。"],
        "closing": ["よろしくお願いいたします。", "以上、よろしくお願いします。"],
        "reply": ["ご回答ありがとうございます。しかし、まだ解決していません。", "解決しました。ありがとうございました。"],
        "re": "Re: ", "wrote": "{date} {name} さんは書きました:",
        "oof": ("自動応答: ", "{day}まで不在にしております。"),
        "charsets": [("iso-2022-jp", 0.8), ("utf-8", 0.2)],
    },
    "ru": {
        "first": ["Иван", "Ольга", "Сергей", "Наталья", "Алексей", "Екатерина", "Дмитрий", "Анна"],
        "last": ["Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов", "Новикова"],
        "subjects": ["Не могу войти в личный кабинет", "Ошибка в счёте {n}", "Заказ {n} не доставлен",
                     "Возврат средств", "Вопрос по подписке"],
        "lines": ["Здравствуйте!", "Добрый день,", "с сегодняшнего утра не могу войти в систему.",
                  "В счёте указана неверная сумма, прошу проверить.", "Очистка кэша браузера не помогла.",
                  "Прошу решить вопрос как можно скорее.", "Наш номер клиента {n}."],
        "closing": ["С уважением,", "Спасибо,"],
        "reply": ["Спасибо за быстрый ответ, но проблема осталась.", "Теперь всё работает, спасибо!"],
        "re": "Re: ", "wrote": "{date}, {name} пишет:",
        "oof": ("Автоответ: ", "Я в отпуске до {day}, ответ может задержаться."),
        "charsets": [("koi8-r", 0.6), ("utf-8", 0.4)],
    },
}  # fmt: skip
LANGUAGE_WEIGHTS = [("en", 0.42), ("de", 0.08), ("fr", 0.07), ("zh", 0.2), ("zh_tw", 0.07), ("ja", 0.08), ("ru", 0.08)]
DOMAINS = {
    "en": ["example.com", "example.co.uk", "mail.example.net", "corp.example.org"],
    "de": ["example.de", "firma.example.at", "example.ch"],
    "fr": ["example.fr", "societe.example.be"],
    "zh": ["example.cn", "qq.example.cn", "163.example.com"],
    "zh_tw": ["example.com.tw", "hinet.example.net"],
    "ja": ["example.jp", "co.example.jp"],
    "ru": ["example.ru", "mail.example.ru"],
}
MAILERS = [
    ("Microsoft Outlook 16.0", "alternative_qp", 0.3),
    ("Apple Mail (2.3774)", "plain", 0.2),
    ("Mozilla Thunderbird 128.5", "plain", 0.2),
    ("Gmail", "alternative_b64", 0.18),
    ("Webmail (HTML only)", "html_only", 0.12),
]


@dataclass
class Sender:
    number: int
    name: str
    address: str
    language: str
    charset: str
    style: str
    mailer: str


@dataclass
class CorpusMail:
    index: int
    kind: str
    sender: str
    message_id: str
    # The ticket the mail opens or joins when the corpus is taken in order into an empty desk;
    # empty when it opens none (quarantine, delivery reports, a second delivery).
    expected_reference: str
    expected: str  # stored | duplicate | quarantined
    raw: bytes = field(repr=False)

    @property
    def filename(self) -> str:
        return f"{self.index:05d}-{self.kind}.eml"


@dataclass
class _Thread:
    sender: Sender
    subject: str
    reference: str
    message_ids: list[str]
    texts: list[tuple[str, str, datetime]]  # (author name, text, when)


def _weighted(rng: random.Random, pairs: Sequence[tuple[T, float]]) -> T:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs], k=1)[0]


# --- Encodings --------------------------------------------------------------------------------------------


def _codec(charset: str) -> str:
    return {"us-ascii": "ascii", "windows-1252": "cp1252", "iso-8859-1": "latin-1"}.get(charset, charset)


def _encodable(text: str, charset: str) -> bool:
    try:
        text.encode(_codec(charset))
    except UnicodeEncodeError:
        return False
    return True


def _header_words(text: str, charset: str, method: str) -> str:
    """``text`` as RFC 2047 encoded words of at most 75 characters, folded; ASCII text as it is."""
    if text.isascii():
        return text
    words: list[str] = []
    chunk = ""
    for char in text:
        if len(_encoded_word(chunk + char, charset, method)) > 75:
            words.append(_encoded_word(chunk, charset, method))
            chunk = ""
        chunk += char
    if chunk:
        words.append(_encoded_word(chunk, charset, method))
    return "\r\n ".join(words)


def _encoded_word(text: str, charset: str, method: str) -> str:
    data = text.encode(_codec(charset))
    if method == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    encoded = "".join(chr(b) if (chr(b).isalnum() and b < 128) else "_" if b == 0x20 else f"={b:02X}" for b in data)
    return f"=?{charset}?Q?{encoded}?="


def _address_header(name: str, address: str, charset: str, method: str) -> str:
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    return f"{_header_words(name, charset, method)} <{address}>"


def _body(text: str, charset: str, transfer: str) -> tuple[bytes, str]:
    """(encoded body, Content-Transfer-Encoding) of ``text`` in ``charset`` with CRLF line ends."""
    data = text.replace("\n", "\r\n").encode(_codec(charset))
    if transfer == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n"), "base64"
    if transfer == "quoted-printable":
        return quopri.encodestring(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), "quoted-printable"
    if data.isascii() or charset == "iso-2022-jp":
        return data, "7bit"
    return data, "8bit"


def _transfer_for(charset: str, style: str, rng: random.Random) -> str:
    if charset in ("us-ascii", "iso-2022-jp"):
        return "7bit"
    if style == "alternative_b64" or charset == "big5":
        return "base64"
    if style == "alternative_qp":
        return "quoted-printable"
    if charset in ("gbk", "koi8-r"):
        return rng.choice(["base64", "8bit"])
    return rng.choice(["quoted-printable", "8bit", "quoted-printable"])


def _html(text: str, charset: str) -> str:
    paragraphs = "".join(
        f"<p>{line.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</p>\n"
        for line in text.split("\n")
        if line.strip()
    )
    return (
        f'<html><head><meta http-equiv="Content-Type" content="text/html; charset={charset}">'
        "<style>p{margin:0;font-family:Calibri,sans-serif}</style></head>\n"
        f'<body><div class="WordSection1">\n{paragraphs}</div>'
        '<table><tr><td style="color:#888">Sent from my office</td></tr></table></body></html>'
    )


def _part(content_type: str, charset: str, text: str, transfer: str) -> bytes:
    body, cte = _body(text, charset, transfer)
    return (
        f'Content-Type: {content_type}; charset="{charset}"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'.encode() + body
    )


def _multipart(subtype: str, parts: list[bytes], boundary: str) -> tuple[str, bytes]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p.rstrip(b"\r\n") + b"\r\n" for p in parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    return f'multipart/{subtype}; boundary="{boundary}"', body


# --- Small attachments ------------------------------------------------------------------------------------


def _png(rng: random.Random) -> bytes:
    width, height = 8, 8
    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _pdf(number: int) -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n"
        + f"% invoice {number}\n".encode()
        + b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


def _attachment(rng: random.Random, number: int) -> tuple[str, str, bytes]:
    """(file name, content type, bytes) of a small attachment."""
    choice = rng.randrange(5)
    if choice == 0:
        return "screenshot.png", "image/png", _png(rng)
    if choice == 1:
        return f"invoice-{number}.pdf", "application/pdf", _pdf(number)
    if choice == 2:
        rows = "\n".join(f"{i},{rng.randrange(1000)},item {i}" for i in range(20))
        return "export.csv", "text/csv", f"line,amount,item\n{rows}\n".encode()
    if choice == 3:
        return "error-log.txt", "text/plain", "\n".join(f"ERROR {i} timeout" for i in range(30)).encode()
    return "发票截图.png", "image/png", _png(rng)


def _attachment_part(name: str, content_type: str, data: bytes) -> bytes:
    if name.isascii():
        disposition = f'attachment; filename="{name}"'
        type_name = f'; name="{name}"'
    else:
        encoded = "".join(f"%{b:02X}" for b in name.encode("utf-8"))
        disposition = f"attachment; filename*=utf-8''{encoded}"
        type_name = ""
    payload = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (
        f"Content-Type: {content_type}{type_name}\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: {disposition}\r\n\r\n"
    ).encode() + payload


# --- Mails ------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, *, count: int, senders: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.count = count
        self.senders = [self._sender(n) for n in range(senders)]
        self.colleagues = [self._sender(senders + n) for n in range(40)]
        self.threads: list[_Thread] = []
        self.thread_of_sender: dict[int, list[_Thread]] = {}
        self.tickets = 0
        self.new_mails: list[CorpusMail] = []

    def _sender(self, number: int) -> Sender:
        rng = self.rng
        language = _weighted(rng, LANGUAGE_WEIGHTS)
        conf = LANGUAGES[language]
        first = rng.choice(conf["first"])
        last = rng.choice(conf["last"])
        name = f"{last}{first}" if language in ("zh", "zh_tw", "ja") else f"{first} {last}"
        charset = _weighted(rng, conf["charsets"])
        mailer, style = _weighted(rng, [((m, s), w) for m, s, w in MAILERS])
        if charset == "iso-2022-jp":
            style = "plain"  # Japanese mail programs send ISO-2022-JP as plain 7-bit text
        domain = rng.choice(DOMAINS[language])
        local = f"customer{number}"
        return Sender(number, name, f"{local}@{domain}", language, charset, style, mailer)

    def _when(self, index: int) -> datetime:
        return START + SPAN * index / self.count + timedelta(seconds=self.rng.randrange(60))

    def _message_id(self, index: int, domain: str) -> str:
        return f"<{self.seed}.{index}.{self.rng.getrandbits(48):012x}@{domain}>"

    def _text(self, sender: Sender, *, reply: bool) -> str:
        conf = LANGUAGES[sender.language]
        rng = self.rng
        number = rng.randrange(10000, 99999)
        if reply:
            lines = [rng.choice(conf["reply"])]
            lines += rng.sample(conf["lines"][2:], k=rng.randint(0, 2))
        else:
            lines = [rng.choice(conf["lines"][:2])]
            lines += rng.sample(conf["lines"][2:], k=rng.randint(2, 4))
        lines += ["", rng.choice(conf["closing"]), sender.name]
        return "\n".join(line.replace("{n}", str(number)) for line in lines)

    def _subject(self, sender: Sender) -> str:
        conf = LANGUAGES[sender.language]
        return rng_subject(self.rng, conf["subjects"])

    def _charset_for(self, sender: Sender, *texts: str) -> str:
        charset = sender.charset
        if all(_encodable(t, charset) for t in texts):
            return charset
        # The text does not fit the preferred charset (an accented name in us-ascii): the
        # program falls back, as real ones do, to UTF-8.
        return "utf-8"

    def _envelope(
        self,
        *,
        index: int,
        sender: Sender,
        subject: str,
        message_id: str,
        when: datetime,
        charset: str,
        extra: Sequence[str] = (),
        to: str = SUPPORT,
    ) -> list[str]:
        method = "Q" if charset in ("iso-8859-1", "windows-1252") else "B"
        return [
            f"Received: from mx{index % 7}.{sender.address.partition('@')[2]} (mx.{sender.address.partition('@')[2]}"
            f" [192.0.2.{index % 250 + 1}]) by mx.servicedesk.example with ESMTPS id {index:08X};"
            f" {format_datetime(when)}",
            f"From: {_address_header(sender.name, sender.address, charset, method)}",
            f"To: {to}",
            f"Subject: {_header_words(subject, charset, method)}",
            f"Date: {format_datetime(when)}",
            f"Message-ID: {message_id}",
            f"X-Mailer: {sender.mailer}",
            *extra,
            "MIME-Version: 1.0",
        ]

    def _assemble(self, headers: list[str], content_type: str, body: bytes, cte: str | None = None) -> bytes:
        lines = [*headers, f"Content-Type: {content_type}"]
        if cte:
            lines.append(f"Content-Transfer-Encoding: {cte}")
        return "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + body

    def _content(
        self, sender: Sender, text: str, charset: str, *, attachments: int = 0, index: int = 0
    ) -> tuple[str, bytes, str | None]:
        """(Content-Type, body, Content-Transfer-Encoding or None for multiparts) in the sender's style."""
        rng = self.rng
        transfer = _transfer_for(charset, sender.style, rng)
        boundary = f"----=_Part_{index}_{rng.getrandbits(32):08x}"
        if sender.style in ("alternative_qp", "alternative_b64"):
            ctype, body = _multipart(
                "alternative",
                [
                    _part("text/plain", charset, text, transfer),
                    _part("text/html", charset, _html(text, charset), transfer),
                ],
                boundary + "_alt",
            )
            cte = None
        elif sender.style == "html_only":
            body, cte = _body(_html(text, charset), charset, transfer)
            ctype = f'text/html; charset="{charset}"'
        else:
            body, cte = _body(text, charset, transfer)
            ctype = (
                f"text/plain; charset={charset}; format=flowed"
                if charset == "utf-8"
                else f"text/plain; charset={charset}"
            )
        if not attachments:
            return ctype, body, cte
        first = (f"Content-Type: {ctype}\r\n" + (f"Content-Transfer-Encoding: {cte}\r\n" if cte else "")).encode()
        parts = [first + b"\r\n" + body]
        for n in range(attachments):
            parts.append(_attachment_part(*_attachment(rng, index * 10 + n)))
        ctype, body = _multipart("mixed", parts, boundary + "_mix")
        return ctype, body, None

    def _new_ticket_reference(self) -> str:
        self.tickets += 1
        return f"SD-{self.tickets + REFERENCE_OFFSET}"

    # Each kind -------------------------------------------------------------------------------------------

    def new_mail(self, index: int, sender: Sender) -> CorpusMail:
        rng = self.rng
        when = self._when(index)
        subject = self._subject(sender)
        text = self._text(sender, reply=False)
        charset = self._charset_for(sender, subject, text, sender.name)
        domain = sender.address.partition("@")[2]
        message_id = self._message_id(index, domain)
        attachments = (1 if rng.random() < 0.7 else 2) if rng.random() < 0.045 else 0
        headers = self._envelope(
            index=index, sender=sender, subject=subject, message_id=message_id, when=when, charset=charset
        )
        ctype, body, cte = self._content(sender, text, charset, attachments=attachments, index=index)
        reference = self._new_ticket_reference()
        thread = _Thread(sender, subject, reference, [message_id], [(sender.name, text, when)])
        self.threads.append(thread)
        self.thread_of_sender.setdefault(sender.number, []).append(thread)
        mail = CorpusMail(
            index, "new", sender.address, message_id, reference, "stored", self._assemble(headers, ctype, body, cte)
        )
        self.new_mails.append(mail)
        return mail

    def _recent_thread(self) -> _Thread:
        recent = self.threads[-400:]
        return self.rng.choice(recent)

    def _quoted(self, thread: _Thread, sender: Sender) -> str:
        conf = LANGUAGES[sender.language]
        author, previous, when = thread.texts[-1]
        head = str(conf["wrote"]).format(date=when.strftime("%Y-%m-%d %H:%M"), name=author)
        return head + "\n" + "\n".join(f"> {line}" if line else ">" for line in previous.split("\n"))

    def reply(self, index: int, *, kind: str) -> CorpusMail:
        """A reply in a thread: by its customer with the thread headers (``reply``) or the subject tag
        alone (``reply_tag_only``), or by a colleague answering to all (``reply_all_colleague``)."""
        rng = self.rng
        thread = self._recent_thread()
        sender = rng.choice(self.colleagues) if kind == "reply_all_colleague" else thread.sender
        conf = LANGUAGES[thread.sender.language]
        subject = f"{conf['re']}[{thread.reference}] {thread.subject}"
        text = self._text(sender, reply=True) + "\n\n" + self._quoted(thread, sender)
        charset = self._charset_for(sender, subject, text, sender.name)
        when = self._when(index)
        message_id = self._message_id(index, sender.address.partition("@")[2])
        extra = []
        if kind != "reply_tag_only":
            references = " ".join(thread.message_ids[-8:])
            extra = [f"In-Reply-To: {thread.message_ids[-1]}", f"References: {references}"]
        to = SUPPORT if kind != "reply_all_colleague" else f"{SUPPORT}, {thread.sender.address}"
        headers = self._envelope(
            index=index,
            sender=sender,
            subject=subject,
            message_id=message_id,
            when=when,
            charset=charset,
            extra=extra,
            to=to,
        )
        ctype, body, cte = self._content(sender, text, charset, index=index)
        thread.message_ids.append(message_id)
        thread.texts.append((sender.name, text, when))
        return CorpusMail(
            index,
            kind,
            sender.address,
            message_id,
            thread.reference,
            "stored",
            self._assemble(headers, ctype, body, cte),
        )

    def stranger_tag(self, index: int) -> CorpusMail:
        """Someone else's subject tag, no thread headers: not theirs to join, so a new ticket."""
        rng = self.rng
        thread = self._recent_thread()
        sender = rng.choice([s for s in rng.sample(self.senders, 5) if s.number != thread.sender.number])
        subject = f"Re: [{thread.reference}] {thread.subject}"
        text = self._text(sender, reply=True)
        charset = self._charset_for(sender, subject, text, sender.name)
        message_id = self._message_id(index, sender.address.partition("@")[2])
        headers = self._envelope(
            index=index, sender=sender, subject=subject, message_id=message_id, when=self._when(index), charset=charset
        )
        ctype, body, cte = self._content(sender, text, charset, index=index)
        reference = self._new_ticket_reference()
        return CorpusMail(
            index,
            "stranger_tag",
            sender.address,
            message_id,
            reference,
            "stored",
            self._assemble(headers, ctype, body, cte),
        )

    def out_of_office(self, index: int) -> CorpusMail:
        """An auto-reply by a customer: half carry their own ticket's tag (they join it), half none (a new
        ticket, never acknowledged)."""
        rng = self.rng
        tagged = rng.random() < 0.5
        thread = self._recent_thread() if tagged else None
        sender = thread.sender if thread else rng.choice(self.senders)
        conf = LANGUAGES[sender.language]
        prefix, line = conf["oof"]
        subject = f"{prefix}{conf['re']}[{thread.reference}] {thread.subject}" if thread else f"{prefix}{conf['re']}"
        if not thread:
            subject += self._subject(sender)
        day = (self._when(index) + timedelta(days=7)).strftime("%Y-%m-%d")
        text = f"{line.format(day=day)}\n\n{sender.name}"
        charset = self._charset_for(sender, subject, text, sender.name)
        message_id = self._message_id(index, sender.address.partition("@")[2])
        extra = ["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All"]
        headers = self._envelope(
            index=index,
            sender=sender,
            subject=subject,
            message_id=message_id,
            when=self._when(index),
            charset=charset,
            extra=extra,
        )
        body, cte = _body(text, charset, _transfer_for(charset, "plain", rng))
        reference = thread.reference if thread else self._new_ticket_reference()
        return CorpusMail(
            index,
            "out_of_office",
            sender.address,
            message_id,
            reference,
            "stored",
            self._assemble(headers, f"text/plain; charset={charset}", body, cte),
        )

    def bulk(self, index: int) -> CorpusMail:
        rng = self.rng
        lists = [
            ("Vendor News", "news@vendor.example", "news.vendor.example"),
            ("Status Updates", "status@cloud.example", "status.cloud.example"),
            ("产品周报", "weekly@saas.example.cn", "weekly.saas.example.cn"),
            ("Security Advisories", "advisories@security.example", "advisories.security.example"),
        ]
        name, address, list_id = lists[index % len(lists)]
        sender = Sender(-1, name, address, "zh" if address.endswith(".cn") else "en", "utf-8", "alternative_b64", "")
        subject = f"{name}: issue {index} {'本周更新' if sender.language == 'zh' else 'this week'}"
        text = "\n".join(
            f"{'更新' if sender.language == 'zh' else 'Update'} {n}: "
            + " ".join(rng.choice(["release", "fix", "feature", "maintenance", "notice"]) for _ in range(12))
            for n in range(rng.randint(8, 20))
        )
        message_id = self._message_id(index, list_id)
        extra = [
            "Precedence: bulk",
            f"List-Id: {_header_words(name, 'utf-8', 'B')} <{list_id}>",
            f"List-Unsubscribe: <https://{list_id}/unsubscribe?u={index}>, <mailto:unsubscribe@{list_id}>",
        ]
        headers = self._envelope(
            index=index,
            sender=sender,
            subject=subject,
            message_id=message_id,
            when=self._when(index),
            charset="utf-8",
            extra=extra,
        )
        ctype, body, cte = self._content(sender, text, "utf-8", index=index)
        return CorpusMail(
            index,
            "bulk",
            address,
            message_id,
            self._new_ticket_reference(),
            "stored",
            self._assemble(headers, ctype, body, cte),
        )

    def redelivered(self, index: int) -> CorpusMail:
        """An earlier new mail again, by another route: one more Received line, the same Message-ID."""
        original = self.rng.choice(self.new_mails[-300:])
        hop = (
            f"Received: from relay.example.net (relay.example.net [198.51.100.{index % 250 + 1}])"
            f" by mx.servicedesk.example with ESMTP id R{index:07X};"
            f" {format_datetime(self._when(index))}\r\n"
        ).encode()
        return CorpusMail(
            index,
            "redelivered",
            original.sender,
            original.message_id,
            original.expected_reference,
            "duplicate",
            hop + original.raw,
        )

    def bounce(self, index: int) -> CorpusMail:
        """A delivery report for mail the desk never sent (a spoofed sender): kept in the quarantine."""
        rng = self.rng
        sender = rng.choice(self.senders)
        message_id = self._message_id(index, "mx.example.net")
        boundary = f"rep{index}"
        headers = [
            "Return-Path: <>",
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>",
            f"To: {SUPPORT}",
            "Subject: Undelivered Mail Returned to Sender",
            f"Date: {format_datetime(self._when(index))}",
            f"Message-ID: {message_id}",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
        ]
        report = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "This is the mail system at host mx.example.net.\r\n\r\n"
            "I'm sorry to have to inform you that your message could not be delivered.\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: rfc822; {sender.address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: {SUPPORT}\r\nTo: {sender.address}\r\nSubject: Your request\r\n"
            f"Message-ID: <spoofed.{index}.{rng.getrandbits(32):08x}@elsewhere.example>\r\n"
            f"--{boundary}--\r\n"
        ).encode()
        raw = self._assemble(headers, f'multipart/report; report-type=delivery-status; boundary="{boundary}"', report)
        return CorpusMail(index, "bounce", "MAILER-DAEMON@mx.example.net", message_id, "", "quarantined", raw)

    def no_sender(self, index: int) -> CorpusMail:
        message_id = self._message_id(index, "broken.example")
        headers = [
            f"To: {SUPPORT}",
            "Subject: (no sender) scanner output",
            f"Date: {format_datetime(self._when(index))}",
            f"Message-ID: {message_id}",
            "MIME-Version: 1.0",
        ]
        raw = self._assemble(headers, "text/plain; charset=us-ascii", b"Scanned document attached.\r\n", "7bit")
        return CorpusMail(index, "no_sender", "", message_id, "", "quarantined", raw)

    def hostile_gbk(self, index: int) -> CorpusMail:
        """8-bit GBK in the headers and the body, no charset declared, no transfer encoding."""
        message_id = self._message_id(index, "example.cn")
        subject = "紧急：系统无法登录，订单全部卡住".encode("gbk")
        name = "王小明".encode("gbk")
        body = "您好，\r\n系统从昨晚开始无法登录，所有订单都卡住了，请尽快处理！\r\n\r\n王小明\r\n".encode("gbk")
        raw = (
            b"From: "
            + name
            + b" <wangxm@example.cn>\r\nTo: "
            + SUPPORT.encode()
            + b"\r\nSubject: "
            + subject
            + f"\r\nDate: {format_datetime(self._when(index))}\r\nMessage-ID: {message_id}\r\n".encode()
            + b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
            + body
        )
        return CorpusMail(
            index, "hostile_gbk", "wangxm@example.cn", message_id, self._new_ticket_reference(), "stored", raw
        )


def rng_subject(rng: random.Random, subjects: list[str]) -> str:
    return rng.choice(subjects).replace("{n}", str(rng.randrange(10000, 99999)))


def corpus_build(
    *, count: int = DEFAULT_COUNT, senders: int = DEFAULT_SENDERS, seed: int = DEFAULT_SEED
) -> list[CorpusMail]:
    """The corpus, in arrival order. Deterministic for a given (count, senders, seed)."""
    builder = _Builder(count=count, senders=senders, seed=seed)
    rng = builder.rng
    kinds: list[str] = []
    for kind, share in SHARES.items():
        kinds += [kind] * max(1, round(count * share))
    kinds += ["new"] * (count - 1 - len(kinds))  # one place is the hostile mail's
    warm_up = min(100, kinds.count("new"))
    rest = sorted(kinds)
    for _ in range(warm_up):  # the first mails are all new, so there are threads to answer
        rest.remove("new")
    rng.shuffle(rest)
    order = ["new"] * warm_up + rest
    order.insert(int(len(order) * 0.7), "hostile_gbk")
    # Every customer writes at least once, in a shuffled order; then some write far more than others.
    first_turns = list(builder.senders)
    rng.shuffle(first_turns)
    weights = [1.0 / (1 + n % 50) for n in range(len(builder.senders))]
    mails: list[CorpusMail] = []
    for index, kind in enumerate(order):
        if kind == "new":
            sender = first_turns.pop() if first_turns else rng.choices(builder.senders, weights=weights, k=1)[0]
            mails.append(builder.new_mail(index, sender))
        elif kind in ("reply", "reply_tag_only", "reply_all_colleague"):
            mails.append(builder.reply(index, kind=kind))
        else:
            mails.append(getattr(builder, kind)(index))
    return mails


def corpus_write(mails: list[CorpusMail], directory: Path) -> Path:
    """Write the .eml files and manifest.json into ``directory`` (emptied of .eml files first)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.eml"):
        old.unlink()
    for mail in mails:
        (directory / mail.filename).write_bytes(mail.raw)
    manifest = [{k: v for k, v in asdict(m).items() if k != "raw"} | {"file": m.filename} for m in mails]
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return directory


def corpus_read(directory: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, raw bytes) of every mail of a written corpus, in arrival order."""
    for path in sorted(directory.glob("*.eml")):
        yield path.name, path.read_bytes()


def corpus_summary(mails: list[CorpusMail]) -> dict[str, object]:
    kinds: dict[str, int] = {}
    for mail in mails:
        kinds[mail.kind] = kinds.get(mail.kind, 0) + 1
    return {
        "mails": len(mails),
        "bytes": sum(len(m.raw) for m in mails),
        "senders": len({m.sender for m in mails if m.sender}),
        "kinds": dict(sorted(kinds.items())),
        "expected_tickets": len({m.expected_reference for m in mails if m.expected_reference}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "intake-corpus")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--senders", type=int, default=DEFAULT_SENDERS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    mails = corpus_build(count=args.count, senders=args.senders, seed=args.seed)
    corpus_write(mails, args.out)
    print(json.dumps(corpus_summary(mails) | {"directory": str(args.out)}, indent=2))


if __name__ == "__main__":
    main()
