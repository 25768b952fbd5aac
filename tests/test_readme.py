"""The README's reference tables are generated from the registries; these tests keep them equal."""

from pathlib import Path

import pytest

from gate.policy.config import manifest_reference, policy_reference
from gate.quantization.methods import method_reference

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("table", "source"),
    [
        (policy_reference, "gate.policy.config.policy_reference()"),
        (manifest_reference, "gate.policy.config.manifest_reference()"),
        (method_reference, "gate.quantization.methods.method_reference()"),
    ],
)
def test_readme_reference_tables_match_the_registries(table, source) -> None:
    assert table() in README, f"regenerate the README's table from {source}"
