import io
from pathlib import Path

import pytest
from django.core.management import call_command

FIXTURES = Path(__file__).parent / "fixtures"


class Run:
    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()

    @property
    def errors(self) -> list[str]:
        return self.stderr.getvalue().splitlines()

    @property
    def summary(self) -> str:
        return self.stdout.getvalue().splitlines()[-1]


@pytest.fixture
def import_history():
    """Run the command; returns a Run with its output (CommandError propagates)."""

    def run(*args: str) -> Run:
        result = Run()
        call_command("import_history", *args, stdout=result.stdout, stderr=result.stderr)
        return result

    return run


@pytest.fixture
def history_file(tmp_path):
    """Write lines to a .jsonl file and return its path as a string."""

    def write(*lines: str, name: str = "history.jsonl") -> str:
        path = tmp_path / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return str(path)

    return write
