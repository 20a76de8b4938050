"""docker-compose.yml is valid and runs every part of the product."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def _compose_config() -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose; ./scripts/test does it as root).")
    result = subprocess.run(
        [binary, "-f", "docker-compose.yml", "config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_and_has_every_service():
    config = _compose_config()
    services = config["services"]

    assert set(services) == {"postgres", "redis", "web", "worker", "beat", "mail-idle", "lmtp", "mailpit"}
    assert "python -m servicedesk.serve" in " ".join(_command(services["web"]))
    assert _command(services["worker"])[:4] == ["celery", "-A", "servicedesk", "worker"]
    assert _command(services["beat"])[:4] == ["celery", "-A", "servicedesk", "beat"]
    assert _command(services["mail-idle"]) == ["python", "manage.py", "mail_idle"]
    assert _command(services["lmtp"])[:3] == ["python", "manage.py", "lmtp_server"]
    assert any("8024" in str(port) for port in services["lmtp"]["ports"])
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    for name in ("web", "worker", "beat", "mail-idle", "lmtp"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert (env["EMAIL_HOST"], str(env["EMAIL_PORT"])) == ("mailpit", "1025")
        assert services[name]["build"]["context"] == str(REPO_ROOT)


def _command(service: dict) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else command
