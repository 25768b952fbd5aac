"""Regenerate the README's and docs/tasks.md's reference tables from the registries: python scripts/update_readme.py

Each table (gate.reporting.reference.REFERENCE_TABLES) sits between `<!-- generated: NAME -->` and
`<!-- end: NAME -->`; tests/test_readme.py (and tests/test_tasks.py for docs/tasks.md) fail until the files
hold what the registries say.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gate.reporting.reference import REFERENCE_TABLES

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = (README, ROOT / "docs" / "tasks.md")  # docs/tasks.md holds the task table


def main() -> int:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for name, table in REFERENCE_TABLES.items():
            pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.DOTALL)
            if not pattern.search(text):
                if page == README:  # a table the README does not show (yet): say where it would go
                    print(f"README.md has no <!-- generated: {name} --> block; {name} is not written", file=sys.stderr)
                continue
            text = pattern.sub(lambda m, table=table: m.group(1) + table() + m.group(2), text)
        page.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
