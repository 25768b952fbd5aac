"""The README and the documentation site: tables generated from the registries, links that lead somewhere."""

import importlib.util
import re
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from gate.reporting.reference import TABLES

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted((REPO / "docs").glob("*.md"))
README = REPO / "README.md"


def _update_docs():
    spec = importlib.util.spec_from_file_location("update_docs", REPO / "scripts" / "update_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_each_generated_table_holds_what_its_registry_says(page) -> None:
    text = page.read_text(encoding="utf-8")
    regenerated, _found, unknown = _update_docs().regenerate(text)
    assert not unknown, f"docs/{page.name} names tables gate.reporting.reference.TABLES lacks: {sorted(unknown)}"
    assert regenerated == text, f"docs/{page.name} is stale: run python scripts/update_docs.py"


def test_every_table_is_on_a_page() -> None:
    regenerate = _update_docs().regenerate
    placed = set().union(*(regenerate(page.read_text(encoding="utf-8"))[1] for page in PAGES))
    assert placed == set(TABLES)


def test_the_readme_stays_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300, "move the details into docs/"


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE)
    return {slugify(re.sub(r"[`*]", "", heading), "-") for heading in headings}


def test_the_readme_links_to_pages_and_headings_that_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", README.read_text(encoding="utf-8"))
    assert links, "the README links to no page of docs/"
    for target, anchor in links:
        page = REPO / target
        assert page.is_file(), f"the README links to {target}, which does not exist"
        if anchor and page.suffix == ".md":
            assert anchor in _anchors(page), f"the README links to {target}#{anchor}: no such heading"
