"""Text messages (SMS) the desk sends: verification codes for a customer's phone number (docs/help-centre.md).

The backend is chosen with ``SD_SMS_BACKEND``:

- ``file`` (the default): each message is written to ``var/sms/`` as a file,
  as mail is written to ``var/mail/`` without ``EMAIL_HOST``;
- ``locmem``: kept in ``outbox`` (the tests);
- ``twilio``: sent through Twilio's Messages API from ``SD_SMS_FROM`` with
  the account's SID (``SD_TWILIO_ACCOUNT_SID``) and auth token
  (``SD_TWILIO_AUTH_TOKEN``).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com/2010-04-01"


@dataclass(frozen=True)
class Sms:
    to: str
    body: str


outbox: list[Sms] = []


class SmsNotSent(Exception):
    pass


def sms_send(*, to: str, body: str) -> None:
    """Send ``body`` to the E.164 number ``to``; SmsNotSent when the backend refused it."""
    backend = settings.SERVICEDESK.get("SMS_BACKEND", "file")
    message = Sms(to=to, body=body)
    if backend == "locmem":
        outbox.append(message)
    elif backend == "twilio":
        _twilio(message)
    else:
        folder = Path(settings.SERVICEDESK.get("SMS_DIR") or (Path(settings.VAR_DIR) / "sms"))
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{timezone.now():%Y%m%d-%H%M%S-%f}.txt"
        (folder / name).write_text(f"To: {to}\n\n{body}\n", encoding="utf-8")


def _twilio(message: Sms) -> None:
    conf = settings.SERVICEDESK
    sid, token, sender = conf.get("TWILIO_ACCOUNT_SID", ""), conf.get("TWILIO_AUTH_TOKEN", ""), conf.get("SMS_FROM", "")
    if not (sid and token and sender):
        raise SmsNotSent("Twilio is not configured (SD_TWILIO_ACCOUNT_SID, SD_TWILIO_AUTH_TOKEN, SD_SMS_FROM).")
    base = conf.get("TWILIO_API_URL") or TWILIO_API
    request = urllib.request.Request(  # noqa: S310 (an https address from the settings)
        f"{base}/Accounts/{urllib.parse.quote(sid)}/Messages.json",
        data=urllib.parse.urlencode({"To": message.to, "From": sender, "Body": message.body}).encode(),
        headers={"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            json.loads(response.read() or b"{}")
    except (OSError, ValueError) as exc:
        log.warning("SMS to %s not sent: %s", message.to[:4] + "…", exc)
        raise SmsNotSent(str(exc)) from exc
