"""Regenerate the README's reference tables from the registries: python scripts/update_readme.py

Each table (gate.reporting.reference.REFERENCE_TABLES) sits between `<!-- generated: NAME -->` and
`<!-- end: NAME -->`; tests/test_readme.py fails until the README holds what the registries say.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gate.reporting.reference import REFERENCE_TABLES

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    for name, table in REFERENCE_TABLES.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.DOTALL)
        if not pattern.search(text):  # a table the README does not show (yet): say where it would go
            print(f"README.md has no <!-- generated: {name} --> block; {name} is not written", file=sys.stderr)
            continue
        text = pattern.sub(lambda m, table=table: m.group(1) + table() + m.group(2), text)
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
