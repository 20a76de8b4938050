"""A real Dovecot IMAP server on loopback for the polling tests.

One server per test session, in a temporary directory: a self-signed
certificate for 127.0.0.1 that the client trusts through
``SERVICEDESK_EMAIL["IMAP_CA_FILE"]``, an IMAPS port and an IMAP port that
offers STARTTLS (``ssl = required``: no login before TLS). Any user name logs
in with ``PASSWORD`` (static passdb), so every test takes a fresh user and
starts with an empty mailbox. A second server without TLS at all stands for a
server that does not offer STARTTLS; a third, whose CAPABILITY leaves IDLE
out, for a server without IMAP IDLE.

Missing Dovecot is a failure, not a skip: CI installs ``dovecot-imapd``.
"""

from __future__ import annotations

import imaplib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "imap-test-secret"
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    config: Path
    imap_port: int
    imaps_port: int | None
    ca_file: Path | None

    def new_user(self) -> str:
        return f"u{uuid.uuid4().hex[:12]}"

    def client(self, user: str) -> imaplib.IMAP4:
        """A second, independent client logged in as ``user`` (for appending and checking)."""
        if self.imaps_port is None:
            plain = imaplib.IMAP4(HOST, self.imap_port, timeout=10)
            plain.login(user, PASSWORD)
            return plain
        context = ssl.create_default_context(cafile=str(self.ca_file))
        client = imaplib.IMAP4_SSL(HOST, self.imaps_port, ssl_context=context, timeout=10)
        client.login(user, PASSWORD)
        return client

    def append(self, user: str, *messages: bytes, folder: str = "INBOX") -> None:
        client = self.client(user)
        try:
            for raw in messages:
                typ, data = client.append(folder, "", None, raw)
                assert typ == "OK", data
        finally:
            client.logout()

    def create_folder(self, user: str, folder: str) -> None:
        client = self.client(user)
        try:
            typ, data = client.create(folder)
            assert typ == "OK", data
        finally:
            client.logout()

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags of every message in ``folder``."""
        client = self.client(user)
        try:
            typ, _ = client.select(folder, readonly=True)
            assert typ == "OK"
            typ, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
            assert typ == "OK", data
        finally:
            client.logout()
        result: dict[int, set[str]] = {}
        for line in data:
            if not isinstance(line, bytes):
                continue
            parsed = imaplib.ParseFlags(line)
            uid = int(line.split(b"UID ", 1)[1].split()[0].rstrip(b")"))
            result[uid] = {flag.decode() for flag in parsed}
        return result

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        client = self.client(user)
        try:
            typ, data = client.status(folder, "(UIDVALIDITY)")
            assert typ == "OK", data
        finally:
            client.logout()
        return int(data[0].split(b"UIDVALIDITY ", 1)[1].rstrip(b")"))

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            ["doveadm", "-c", str(self.config), *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, f"doveadm {' '.join(args)}: {done.stderr.strip()}"
        return done.stdout

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.config), "stop"], capture_output=True, timeout=30, check=False)


def _config(root: Path, *, imap_port: int, imaps_port: int | None, capability: str | None = None) -> str:
    tls = (
        f"ssl = required\nssl_cert = <{root / 'cert.pem'}\nssl_key = <{root / 'key.pem'}\ndisable_plaintext_auth = yes\n"
        if imaps_port is not None
        else "ssl = no\ndisable_plaintext_auth = no\n"
    )
    imaps = (
        f"  inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n" if imaps_port is not None else ""
    )
    return (
        f"base_dir = {root / 'run'}\n"
        f"log_path = {root / 'dovecot.log'}\n"
        "protocols = imap\n"
        f"listen = {HOST}\n"
        f"{tls}"
        "auth_mechanisms = plain login\n"
        "passdb {\n  driver = static\n"
        f"  args = password={PASSWORD}\n}}\n"
        "userdb {\n  driver = static\n"
        f"  args = uid=dovecot gid=dovecot home={root / 'home'}/%u\n}}\n"
        "mail_location = maildir:~/Maildir\n"
        # IDLE learns of new mail through inotify, else by looking this often.
        "mailbox_idle_check_interval = 1 secs\n"
        "first_valid_uid = 1\nfirst_valid_gid = 1\n"
        "service imap-login {\n"
        f"  inet_listener imap {{\n    port = {imap_port}\n  }}\n{imaps}"
        "  chroot =\n}\n"
        "service anvil {\n  chroot =\n}\n"
        + (f"protocol imap {{\n  imap_capability = {capability}\n}}\n" if capability else "")
    )


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"Dovecot did not listen on {HOST}:{port}")


def dovecot_start(root: Path, *, tls: bool = True, capability: str | None = None) -> Dovecot:
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        pytest.fail("Dovecot is not installed: apt-get install dovecot-imapd (CI does this in .ci/run).")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    (root / "run").mkdir()
    home = root / "home"
    home.mkdir()
    shutil.chown(home, "dovecot", "dovecot")
    ca_file: Path | None = None
    if tls:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
                "-days", "2", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )  # fmt: skip
        ca_file = root / "cert.pem"
    server = Dovecot(
        root=root,
        config=root / "dovecot.conf",
        imap_port=_free_port(),
        imaps_port=_free_port() if tls else None,
        ca_file=ca_file,
    )
    server.config.write_text(
        _config(root, imap_port=server.imap_port, imaps_port=server.imaps_port, capability=capability)
    )
    # The daemon keeps its inherited descriptors open: no pipes, or run() waits for it.
    with open(root / "start.log", "wb") as log:
        done = subprocess.run(
            ["dovecot", "-c", str(server.config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30
        )
    if done.returncode != 0:
        pytest.fail(f"Dovecot did not start: {(root / 'start.log').read_text().strip()}")
    _wait_listening(server.imap_port)
    if server.imaps_port is not None:
        _wait_listening(server.imaps_port)
    return server


@contextmanager
def dovecot_running(*, tls: bool, capability: str | None = None) -> Iterator[Dovecot]:
    # The mail processes run as the dovecot user and need to traverse to the
    # homes: pytest's temporary directories are private (0700), this one is not.
    root = Path(tempfile.mkdtemp(prefix="sd-dovecot-"))
    root.chmod(0o711)
    try:
        server = dovecot_start(root / "server", tls=tls, capability=capability)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    with dovecot_running(tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_without_tls() -> Iterator[Dovecot]:
    with dovecot_running(tls=False) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_without_idle() -> Iterator[Dovecot]:
    """A TLS server whose CAPABILITY (before and after login) does not list IDLE."""
    with dovecot_running(tls=True, capability="IMAP4rev1 LITERAL+ UIDPLUS MOVE") as server:
        yield server


@pytest.fixture
def imap_ca(dovecot: Dovecot, settings) -> Path:  # type: ignore[no-untyped-def]
    """Make the poller trust the test server's certificate."""
    assert dovecot.ca_file is not None
    settings.SERVICEDESK_EMAIL = {**getattr(settings, "SERVICEDESK_EMAIL", {}), "IMAP_CA_FILE": str(dovecot.ca_file)}
    return dovecot.ca_file
