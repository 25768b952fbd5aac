"""Regenerate the documentation's reference tables from the registries: python scripts/update_docs.py

Each table sits in a page of docs/ between `<!-- generated: NAME -->` and `<!-- end: NAME -->`, NAME
one of gate.reporting.reference.TABLES; tests/test_docs.py fails until the pages hold what the registries say.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gate.reporting.reference import TABLES

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n).*?(<!-- end: \2 -->)", re.DOTALL)


def regenerate(text: str) -> tuple[str, set[str], set[str]]:
    """`text` with every generated block rewritten, the tables it holds, and the unknown names it uses."""
    found, unknown = set(), set()

    def table(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            unknown.add(name)
            return match.group(0)
        found.add(name)
        return match.group(1) + TABLES[name]() + match.group(3)

    return BLOCK.sub(table, text), found, unknown


def main() -> int:
    placed: set[str] = set()
    problems = []
    for page in sorted(DOCS.glob("*.md")):
        text, found, unknown = regenerate(page.read_text(encoding="utf-8"))
        placed |= found
        problems += [
            f"docs/{page.name}: no table named {name!r} in gate.reporting.reference.TABLES" for name in sorted(unknown)
        ]
        page.write_text(text, encoding="utf-8")
    problems += [f"no page of docs/ has a <!-- generated: {name} --> block" for name in TABLES if name not in placed]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
