"""The bundled digits_wide_cnn under the microcontroller policy: it passes on LiteRT (tests/test_gate.py) and fails
policies/mcu.toml on its tensor arena, naming it; the fix the report offers passes; and the README's excerpt of the
report is what gate writes for it."""

from __future__ import annotations

import re
import shutil

import pytest
from helpers import REPO, run_gate

README = (REPO / "README.md").read_text(encoding="utf-8")
EXCERPT = re.compile(r"<!-- mcu-report: begin -->\n(.*?)<!-- mcu-report: end -->", re.DOTALL)
OVERRIDE = 'override_reason = "our board gives the model 96 KiB of SRAM"\n[overrides.memory]\nmax_arena_kib = 67\n'


@pytest.fixture(scope="module")
def mcu_example(tmp_path_factory):
    """digits_wide_cnn with `policy = "mcu"` in its gate.toml, as the README says; and again with the override the
    report suggests."""
    root = tmp_path_factory.mktemp("wide")
    shutil.copytree(REPO / "policies", root / "policies")
    for name, extra in (("digits_wide_cnn", ""), ("with_budget", OVERRIDE)):
        folder = root / "models" / name
        shutil.copytree(REPO / "models" / "digits_wide_cnn", folder)
        manifest = (folder / "gate.toml").read_text().replace('policy = "default"', 'policy = "mcu"')
        (folder / "gate.toml").write_text(manifest + extra)
    return run_gate("check", "--out", root / "out", cwd=root)


def test_it_fails_the_microcontroller_policy_on_its_arena_naming_it(mcu_example) -> None:
    model = mcu_example.model("digits_wide_cnn")
    assert model["status"] == "FAIL" and mcu_example.exit_code == 1
    (published,) = model["candidates"]  # no later candidate has a smaller arena than int8: none is tried
    failed = [check for check in published["checks"] if check["status"] == "FAIL"]
    assert [check["name"] for check in failed] == ["memory.max_arena_kib"]
    arena = published["conversion"]["device"]["arena_bytes"]
    assert arena > 64 * 1024
    assert failed[0]["message"] == f"tensor arena {arena:,} bytes = {arena / 1024:.2f} KiB (budget ≤ 64 KiB)"
    assert "no later candidate is smaller in its tensor arena than int8, so none was tried" in model["choice"]


def test_the_budget_the_report_suggests_passes_it(mcu_example) -> None:
    assert "[overrides.memory]\nmax_arena_kib = 67\n" in mcu_example.markdown
    assert mcu_example.model("with_budget")["status"] == "PASS", mcu_example.stdout


def test_the_readmes_microcontroller_report_is_the_one_gate_writes(mcu_example) -> None:
    (excerpt,) = EXCERPT.findall(README)
    lines = [line for line in excerpt.splitlines() if line.strip() and not line.startswith("```")]
    assert len(lines) > 10
    written = set(mcu_example.markdown.splitlines())
    assert [line for line in lines if line not in written] == []
