"""One HTTP POST to an endpoint, safe against server-side request forgery.

The host is resolved once; every address it resolves to must be public
(``address_refusal``) unless the endpoint allows private addresses, and the
connection goes to that resolved address, so a DNS answer that changes
between the check and the connection (rebinding) cannot move it. Only http
and https; redirects are never followed (a 3xx is a failed attempt); connect
and read time out after a few seconds; at most ``READ_CAP`` bytes of the
answer are read. TLS checks the certificate against the URL's host name.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
READ_CAP = 4096
EXCERPT_MAX = 500
SCHEMES = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The URL may not be called: a scheme other than http(s), no host, or a private address."""


@dataclass(frozen=True)
class Response:
    status_code: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be called without "allow private addresses" (None: it may).

    IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are judged as the IPv4
    address they carry.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for flag, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, flag):
            return reason
    if not address.is_global:
        return "not public"
    return None


def url_check(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL; AddressRefused otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise AddressRefused(_("Only http and https addresses can receive webhooks."))
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise AddressRefused(_("The address has an invalid port.")) from None
    host = parts.hostname or ""
    if not host:
        raise AddressRefused(_("The address has no host."))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, path


def resolve(host: str, port: int, *, allow_private: bool) -> IPAddress:
    """The one address to connect to: the host's first, after every one was checked."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise AddressRefused(_("The host name could not be resolved: %(error)s") % {"error": exc}) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise AddressRefused(_("The host name could not be resolved."))
    if not allow_private:
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                raise AddressRefused(
                    _("%(address)s is a %(reason)s address; only public addresses receive webhooks.")
                    % {"address": address, "reason": reason}
                )
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address resolved beforehand; the Host header keeps the URL's name."""

    def __init__(self, host: str, port: int, *, address: IPAddress) -> None:
        super().__init__(host, port, timeout=CONNECT_TIMEOUT)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), timeout=CONNECT_TIMEOUT)
        self.sock.settimeout(READ_TIMEOUT)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def connect(self) -> None:
        super().connect()
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)


def post(*, url: str, body: bytes, headers: dict[str, str], allow_private: bool) -> Response:
    """POST ``body`` to ``url``; never raises: a refusal or a failure is the response's ``error``."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, port, path = url_check(url)
        address = resolve(host, port, allow_private=allow_private)
    except AddressRefused as exc:
        return Response(status_code=None, excerpt="", error=str(exc)[:300], duration_ms=took())
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address=address)
    try:
        connection.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        answer = connection.getresponse()
        raw = answer.read(READ_CAP)
        status = answer.status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Response(status_code=None, excerpt="", error=f"{type(exc).__name__}: {exc}"[:300], duration_ms=took())
    finally:
        connection.close()
    excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_MAX]
    error = ""
    if 300 <= status < 400:
        error = _("Redirects are not followed (%(location)s).") % {
            "location": (answer.getheader("Location") or "")[:200]
        }
    elif not 200 <= status < 300:
        error = _("The endpoint answered %(status)d.") % {"status": status}
    return Response(status_code=status, excerpt=excerpt, error=error[:300], duration_ms=took())
