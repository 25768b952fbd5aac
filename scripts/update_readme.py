"""Regenerate the README's and the docs' reference tables from the registries: python scripts/update_readme.py

Each table sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->`;
tests/test_readme.py (and tests/test_tasks.py for docs/tasks.md) fail until the files hold what the registries say.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gate.policy.config import manifest_reference, policy_reference
from gate.quantization.methods import method_reference
from gate.tasks import task_reference

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    ROOT / "README.md": {"policy_reference": policy_reference, "manifest_reference": manifest_reference,
                         "method_reference": method_reference},
    ROOT / "docs" / "tasks.md": {"task_reference": task_reference},
}  # fmt: skip


def main() -> int:
    for path, tables in TABLES.items():
        text = path.read_text(encoding="utf-8")
        for name, table in tables.items():
            pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.DOTALL)
            if not pattern.search(text):
                print(f"{path.relative_to(ROOT)} has no <!-- generated: {name} --> block", file=sys.stderr)
                return 1
            text = pattern.sub(lambda m, table=table: m.group(1) + table() + m.group(2), text)
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
