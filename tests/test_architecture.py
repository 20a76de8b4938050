"""The dependency rules of docs/architecture.md ("Dependency rules"), checked on every module.

The table is read from the document itself, so the rule written there is the
rule the test applies. Every module of the source trees is parsed with
``ast``: imports at the top, inside functions and under ``TYPE_CHECKING``
(type-only imports count, see the document), relative imports, and the
modules a URL configuration mounts with ``include("...")``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "architecture.md"
SOURCE_TREES = ("servicedesk", "channels_app", "reports")
EVERYTHING = "*"
PRIVATE_RULE = "no module imports a private name from another package"
DOMAIN_MODELS = "servicedesk.tickets.models"
# Packages that read the domain's models and write them only through its services.
READ_ONLY_PACKAGES = ("channels_app.email", "channels_app.web", "reports")
WRITE_METHODS = frozenset(
    {"create", "update", "delete", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}
)
WRITE_RULE = f"{', '.join(READ_ONLY_PACKAGES)} write the domain's models only through its services"


@dataclass(frozen=True)
class ImportRef:
    """One module name a source module depends on, and the names it takes from it."""

    line: int
    module: str
    names: tuple[str, ...] = ()


def rules_from_document(text: str) -> dict[str, tuple[str, ...]]:
    """The table under "### Dependency rules": package -> the packages it may import.

    Names in one cell are one package: each may also import the others.
    """
    section = text.split("### Dependency rules", 1)[1]
    rules: dict[str, tuple[str, ...]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            if rules and not line.startswith("|"):
                break
            continue
        packages_cell, allowed_cell = line.strip().strip("|").split("|")
        allowed: tuple[str, ...] = (
            (EVERYTHING,) if allowed_cell.strip() == "everything" else tuple(re.findall(r"`([\w.]+)`", allowed_cell))
        )
        packages = re.findall(r"`([\w.]+)`", packages_cell)
        for package in packages:
            rules[package] = allowed + tuple(
                other for other in packages if other != package and allowed != (EVERYTHING,)
            )
    return rules


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(root: Path) -> dict[str, Path]:
    """Every module of the source trees under ``root`` (migrations included), by dotted name."""
    modules: dict[str, Path] = {}
    for tree in SOURCE_TREES:
        for path in sorted((root / tree).rglob("*.py")):
            modules[module_name(root, path)] = path
    return modules


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, known: Mapping[str, Path]) -> Iterator[ImportRef]:
    """Every project module ``module`` depends on, wherever in the file the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportRef(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            plain: list[str] = []
            for alias in node.names:
                # ``from package import module`` depends on that module, not on the package.
                if f"{base}.{alias.name}" in known:
                    yield ImportRef(node.lineno, f"{base}.{alias.name}")
                else:
                    plain.append(alias.name)
            if plain:
                yield ImportRef(node.lineno, base, tuple(plain))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "include"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield ImportRef(node.lineno, node.args[0].value)


def private_attributes_of(path: Path, module: str, known: Mapping[str, Path]) -> Iterator[ImportRef]:
    """``alias._name`` where ``alias`` is a project module this file imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in known:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _is_private(node.attr)
        ):
            yield ImportRef(node.lineno, aliases[node.value.id], (node.attr,))


def domain_writes(path: Path, module: str) -> Iterator[ImportRef]:
    """Writes through the manager of a domain model: ``Ticket.objects....update(...)`` and the like.

    An instance's ``save()`` cannot be told apart from any other object's
    without types; the manager writes are what an edge reaches for.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    models: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _absolute(module, is_package, node) == DOMAIN_MODELS:
            models.update(alias.asname or alias.name for alias in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITE_METHODS:
            receiver: ast.expr = node.func.value
            while isinstance(receiver, (ast.Call, ast.Attribute, ast.Subscript)):
                if (
                    isinstance(receiver, ast.Attribute)
                    and receiver.attr == "objects"
                    and isinstance(receiver.value, ast.Name)
                    and receiver.value.id in models
                ):
                    yield ImportRef(node.lineno, DOMAIN_MODELS, (receiver.value.id, node.func.attr))
                    break
                receiver = receiver.func if isinstance(receiver, ast.Call) else receiver.value


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def package_of(module: str, rules: Mapping[str, tuple[str, ...]]) -> str | None:
    """The longest package of the table that ``module`` is, or is inside of.

    The row of a source tree with rows below it (``servicedesk``,
    ``channels_app``) is that package's own ``__init__`` only, so a new
    package under it belongs to no row until it is given one.
    """
    matches = [package for package in rules if module == package or _covers(package, module, rules)]
    return max(matches, key=len) if matches else None


def _covers(package: str, module: str, rules: Mapping[str, tuple[str, ...]]) -> bool:
    if not module.startswith(package + "."):
        return False
    return package not in SOURCE_TREES or not any(other.startswith(package + ".") for other in rules)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def allowed(source_package: str, target: str, rules: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether a module of ``source_package`` may import ``target``.

    An entry opens the package it names with everything below it, except the
    parts that are rows of their own (``servicedesk.sla`` does not open
    ``servicedesk.sla.breach``).
    """
    target_package = package_of(target, rules)
    if target_package == source_package:
        return True
    entries = rules[source_package]
    if EVERYTHING in entries:
        return True
    if target_package is None:
        return False
    return any(_within(target, entry) and _within(entry, target_package) for entry in entries)


def violations(root: Path, rules: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One line per broken rule: ``file:line: what (rule: ...)``, sorted."""
    known = source_modules(root)
    found: list[str] = []
    for module, path in known.items():
        where = path.relative_to(root).as_posix()
        source_package = package_of(module, rules)
        if source_package is None:
            found.append(f"{where}:1: {module} belongs to no package of the table (rule: every module has a row)")
            continue
        for ref in imports_of(module, path, known):
            top = ref.module.split(".")[0]
            if top == "tests":
                found.append(f"{where}:{ref.line}: {module} imports {ref.module} (rule: source never imports tests)")
                continue
            if top not in SOURCE_TREES:
                continue
            if not allowed(source_package, ref.module, rules):
                may = ", ".join(rules[source_package]) or "nothing of the project"
                found.append(
                    f"{where}:{ref.line}: {module} imports {ref.module} (rule: {source_package} may import {may})"
                )
            if package_of(ref.module, rules) != source_package:
                for name in ref.names:
                    if _is_private(name):
                        found.append(
                            f"{where}:{ref.line}: {module} imports {name} from {ref.module} (rule: {PRIVATE_RULE})"
                        )
        if source_package in READ_ONLY_PACKAGES:
            for ref in domain_writes(path, module):
                model, method = ref.names
                found.append(f"{where}:{ref.line}: {module} calls {model}.objects...{method}() (rule: {WRITE_RULE})")
        for ref in private_attributes_of(path, module, known):
            if package_of(ref.module, rules) != source_package:
                found.append(f"{where}:{ref.line}: {module} reads {ref.module}.{ref.names[0]} (rule: {PRIVATE_RULE})")
    return sorted(found)


def cycles(rules: Mapping[str, tuple[str, ...]], *, cells: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Pairs of packages of the table that may each reach the other (two names of one cell are one package)."""
    cells = cells or {}
    packages = [package for package in rules if EVERYTHING not in rules[package]]
    reach: dict[str, set[str]] = {
        a: {b for b in (package_of(e, rules) for e in rules[a]) if b is not None and b != a} for a in packages
    }
    changed = True
    while changed:
        changed = False
        for a in packages:
            extra = set().union(*(reach[b] for b in reach[a])) - reach[a] - {a}
            if extra:
                reach[a] |= extra
                changed = True
    return sorted(
        (a, b)
        for a in packages
        for b in reach[a]
        if a < b and a in reach[b] and (a not in cells or cells.get(a) != cells.get(b))
    )


def cells_from_document(text: str) -> dict[str, str]:
    """Each package named in a cell of several names -> that cell's first name."""
    cells: dict[str, str] = {}
    for line in text.split("### Dependency rules", 1)[1].splitlines():
        if line.startswith("| `"):
            names = re.findall(r"`([\w.]+)`", line.strip().strip("|").split("|")[0])
            if len(names) > 1:
                cells.update(dict.fromkeys(names, names[0]))
    return cells


RULES = rules_from_document(DOCUMENT.read_text(encoding="utf-8"))
CELLS = cells_from_document(DOCUMENT.read_text(encoding="utf-8"))


def test_the_table_is_read_from_the_document() -> None:
    assert RULES["servicedesk.core"] == ()
    assert RULES["servicedesk.tickets"] == (
        "servicedesk.core",
        "servicedesk.accounts",
        "servicedesk.sla",
        "servicedesk.tickets.statuses",
    )
    # The help centre reads the knowledge base (its suggestions); otherwise the two channels reach the same.
    assert tuple(r for r in RULES["channels_app.web"] if r != "servicedesk.kb") == RULES["channels_app.email"]
    assert "servicedesk.routing" not in RULES["channels_app.email"]
    assert RULES["servicedesk"] == (EVERYTHING,)
    assert len(RULES) == 29


def test_the_layers_have_no_cycle() -> None:
    assert cycles(RULES, cells=CELLS) == []
    assert CELLS["servicedesk.sla.tasks"] == "servicedesk.sla.breach"


def test_every_module_follows_the_dependency_rules() -> None:
    assert violations(ROOT, RULES) == []


# --- The checker itself, on a planted tree ------------------------------------


def _plant(root: Path, files: Mapping[str, str]) -> None:
    for tree in SOURCE_TREES:
        (root / tree).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


PLANTED = {
    "servicedesk/__init__.py": "",
    "servicedesk/urls.py": "from channels_app.email import api\nfrom reports import views\n",
    "servicedesk/core/__init__.py": "",
    "servicedesk/tickets/__init__.py": "",
    "servicedesk/tickets/statuses.py": "",
    "servicedesk/tickets/services/__init__.py": "",
    "servicedesk/tickets/services/tickets.py": "def _touch():\n    pass\n\ndef ticket_touch():\n    pass\n",
    "servicedesk/tickets/models.py": "from servicedesk.tickets.services.tickets import _touch\n",
    "servicedesk/tickets/api.py": (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from channels_app.email.models import InboundEmail\n"
        "from django.urls import include, path\n"
        "urlpatterns = [path('x/', include('channels_app.email.urls'))]\n"
    ),
    "servicedesk/sla/__init__.py": "from servicedesk.tickets import statuses\n",
    "servicedesk/sla/models.py": "from ..tickets.models import Ticket\n",
    "servicedesk/sla/breach.py": "from servicedesk.tickets.services.tickets import ticket_touch\n",
    "servicedesk/routing/__init__.py": "",
    "servicedesk/routing/services.py": (
        "from servicedesk.tickets.services import tickets as ticket_services\n"
        "def route():\n"
        "    from servicedesk.sla import breach\n"
        "    return ticket_services._touch()\n"
    ),
    "servicedesk/stray/__init__.py": "",
    "channels_app/__init__.py": "",
    "channels_app/email/__init__.py": "",
    "channels_app/email/api.py": "from servicedesk.tickets.services.tickets import ticket_touch\n",
    "channels_app/email/models.py": "import tests.factories\n",
    "channels_app/email/urls.py": "",
    "channels_app/email/views.py": "from servicedesk.tickets import api\nfrom channels_app.web import forms\n",
    "channels_app/web/__init__.py": "",
    "channels_app/web/forms.py": "",
    "reports/__init__.py": "",
    "reports/views.py": "from servicedesk.tickets.models import Ticket\n",
    "reports/tasks.py": (
        "from servicedesk.tickets.models import Ticket as T\n"
        "def f():\n"
        "    T.objects.filter(pk=1).first()\n"
        "    T.objects.select_for_update().filter(pk=1).update(subject='x')\n"
    ),
}

PLANTED_RULES = {
    "servicedesk.core": (),
    "servicedesk.tickets.statuses": (),
    "servicedesk.sla": ("servicedesk.core", "servicedesk.tickets.statuses"),
    "servicedesk.tickets": ("servicedesk.core", "servicedesk.sla"),
    "servicedesk.sla.breach": ("servicedesk.sla", "servicedesk.tickets"),
    "servicedesk.routing": ("servicedesk.sla", "servicedesk.tickets"),
    "channels_app": (),
    "channels_app.email": ("servicedesk.tickets.services", "servicedesk.tickets.models"),
    "channels_app.web": ("servicedesk.tickets.services",),
    "reports": ("servicedesk.tickets.models",),
    "servicedesk": (EVERYTHING,),
    "servicedesk.urls": (EVERYTHING,),
}


def test_the_checker_reports_each_planted_violation_with_file_line_and_rule(tmp_path: Path) -> None:
    _plant(tmp_path, PLANTED)
    assert violations(tmp_path, PLANTED_RULES) == [
        "channels_app/email/models.py:1: channels_app.email.models imports tests.factories "
        "(rule: source never imports tests)",
        "channels_app/email/views.py:1: channels_app.email.views imports servicedesk.tickets.api "
        "(rule: channels_app.email may import servicedesk.tickets.services, servicedesk.tickets.models)",
        "channels_app/email/views.py:2: channels_app.email.views imports channels_app.web.forms "
        "(rule: channels_app.email may import servicedesk.tickets.services, servicedesk.tickets.models)",
        f"reports/tasks.py:4: reports.tasks calls T.objects...update() (rule: {WRITE_RULE})",
        "servicedesk/routing/services.py:3: servicedesk.routing.services imports servicedesk.sla.breach "
        "(rule: servicedesk.routing may import servicedesk.sla, servicedesk.tickets)",
        "servicedesk/routing/services.py:4: servicedesk.routing.services reads "
        f"servicedesk.tickets.services.tickets._touch (rule: {PRIVATE_RULE})",
        "servicedesk/sla/models.py:1: servicedesk.sla.models imports servicedesk.tickets.models "
        "(rule: servicedesk.sla may import servicedesk.core, servicedesk.tickets.statuses)",
        "servicedesk/stray/__init__.py:1: servicedesk.stray belongs to no package of the table "
        "(rule: every module has a row)",
        "servicedesk/tickets/api.py:4: servicedesk.tickets.api imports channels_app.email.models "
        "(rule: servicedesk.tickets may import servicedesk.core, servicedesk.sla)",
        "servicedesk/tickets/api.py:6: servicedesk.tickets.api imports channels_app.email.urls "
        "(rule: servicedesk.tickets may import servicedesk.core, servicedesk.sla)",
    ]


def test_the_checker_accepts_the_planted_tree_once_repaired(tmp_path: Path) -> None:
    repaired = dict(PLANTED)
    repaired["servicedesk/sla/models.py"] = "from ..tickets.statuses import *\n"
    repaired["servicedesk/tickets/api.py"] = "from servicedesk.sla import models\n"
    repaired["servicedesk/routing/services.py"] = (
        "from servicedesk.tickets.services import tickets as ticket_services\n"
        "def route():\n"
        "    return ticket_services.ticket_touch()\n"
    )
    repaired["channels_app/email/models.py"] = ""
    repaired["reports/tasks.py"] = (
        "from servicedesk.tickets.models import Ticket as T\nT.objects.filter(pk=1).exists()\n"
    )
    repaired["channels_app/email/views.py"] = "from servicedesk.tickets.services import tickets\n"
    del repaired["servicedesk/stray/__init__.py"]
    _plant(tmp_path, repaired)
    assert violations(tmp_path, PLANTED_RULES) == []


def test_a_private_name_is_refused_across_packages_only(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        {
            "servicedesk/__init__.py": "",
            "servicedesk/tickets/__init__.py": "",
            "servicedesk/tickets/a.py": "def _helper():\n    pass\n",
            "servicedesk/tickets/b.py": "from servicedesk.tickets.a import _helper\n",
            "servicedesk/routing/__init__.py": "",
            "servicedesk/routing/c.py": "def f():\n    from servicedesk.tickets.a import _helper, __doc__\n",
        },
    )
    rules = {"servicedesk.tickets": (), "servicedesk.routing": ("servicedesk.tickets",), "servicedesk": ()}
    assert violations(tmp_path, rules) == [
        f"servicedesk/routing/c.py:2: servicedesk.routing.c imports _helper from servicedesk.tickets.a "
        f"(rule: {PRIVATE_RULE})",
    ]


def test_a_cycle_in_the_table_is_found() -> None:
    rules = {
        "servicedesk.core": (),
        "servicedesk.tickets": ("servicedesk.core", "servicedesk.sla"),
        "servicedesk.sla": ("servicedesk.core", "servicedesk.routing"),
        "servicedesk.routing": ("servicedesk.tickets",),
    }
    assert cycles(rules) == [
        ("servicedesk.routing", "servicedesk.sla"),
        ("servicedesk.routing", "servicedesk.tickets"),
        ("servicedesk.sla", "servicedesk.tickets"),
    ]


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("servicedesk.tickets", "servicedesk.sla.models", True),
        ("servicedesk.tickets", "servicedesk.sla.breach", False),
        ("servicedesk.sla", "servicedesk.tickets.statuses", True),
        ("servicedesk.sla", "servicedesk.tickets.models", False),
        ("channels_app.email", "servicedesk.tickets.services.intake", True),
        ("channels_app.email", "servicedesk.tickets.locks", True),
        ("channels_app.email", "servicedesk.tickets.hooks", False),
        ("channels_app.email", "servicedesk.desk.views", False),
        ("reports", "servicedesk.tickets.services.tickets", False),
        ("servicedesk.desk", "channels_app.email.urls", False),
        ("servicedesk", "channels_app.email.api", True),
    ],
)
def test_the_rules_of_the_document_decide(source: str, target: str, expected: bool) -> None:
    assert allowed(source, target, RULES) is expected
