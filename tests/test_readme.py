"""The README's reference tables are generated from the registries; these tests keep them equal."""

import re
from pathlib import Path

import pytest

from gate.reporting.reference import REFERENCE_TABLES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
SHOWN = re.findall(r"<!-- generated: (\w+) -->", README)


@pytest.mark.parametrize("name", SHOWN)
def test_readme_reference_tables_match_the_registries(name) -> None:
    assert REFERENCE_TABLES[name]() in README, f"regenerate the README's {name} with python scripts/update_readme.py"


def test_the_readme_shows_the_policy_manifest_and_method_tables() -> None:
    assert {"policy_reference", "manifest_reference", "method_reference"} <= set(SHOWN)
