"""Regenerate the README's reference tables from the registries: python scripts/update_readme.py

Each table sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->`;
tests/test_readme.py fails until the README holds what the registries say.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gate.policy.config import manifest_reference, policy_reference
from gate.quantization.methods import method_reference

TABLES = {"policy_reference": policy_reference, "manifest_reference": manifest_reference,
          "method_reference": method_reference}  # fmt: skip
README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.DOTALL)
        if not pattern.search(text):
            print(f"README.md has no <!-- generated: {name} --> block", file=sys.stderr)
            return 1
        text = pattern.sub(lambda m, table=table: m.group(1) + table() + m.group(2), text)
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
