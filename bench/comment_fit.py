"""How long gate takes to render a report and fit it into one PR comment, for 500, 2,000 and 3,000 models.

Every 7th model fails, every 5th has overrides (a WARNING callout), one has a 73,000-character override
reason. Prints, per size, the seconds to render the Markdown parts (gate.reporting.markdown.render, once for report.md
and the comment), the seconds to fit the comment (gate.reporting.markdown.fit_comment), their sum, the comment's
length, that the verdict and every callout were kept (each model's, or in brief: one per kind naming the
models), and how many summary rows fit. Target: 3,000 models in under 3 s.

    python bench/comment_fit.py
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factories import model_result  # noqa: E402

from gate.reporting.markdown import GITHUB_COMMENT_LIMIT, fit_comment, render  # noqa: E402

SIZES = (500, 2000, 3000)


def results(count: int) -> list:
    made = []
    for index in range(count):
        overrides = {"size.min_reduction": 2.0} if index % 5 == 0 else None
        result = model_result(f"model_{index:04d}", accuracy=80.0 if index % 7 == 0 else 95.0, overrides=overrides)
        if index == 0:
            reason = "a reason, " * 7_300  # 73,000 characters
            result = dataclasses.replace(
                result, provenance=dataclasses.replace(result.provenance, override_reason=reason)
            )
        made.append(result)
    return made


def main() -> int:
    print(f"{'models':>7} {'render':>8} {'fit':>8} {'total':>8} {'comment chars':>14}  kept")
    for count in SIZES:
        models = results(count)
        start = time.perf_counter()
        parts = render(models)
        rendered = time.perf_counter()
        comment = fit_comment(parts, models)
        fitted = time.perf_counter()
        callouts = sum(1 for index in range(count) if index % 5 == 0)
        each = comment.count("> [!WARNING]") == callouts
        brief = f"**{callouts} model(s) have overrides in force**" in comment
        kept = (each or brief) and "## ❌ gate:" in comment.splitlines()[1]
        rows = sum(line.startswith("| model_") for line in comment.splitlines())
        assert len(comment) <= GITHUB_COMMENT_LIMIT
        print(
            f"{count:>7} {rendered - start:>7.2f}s {fitted - rendered:>7.3f}s {fitted - start:>7.2f}s "
            f"{len(comment):>14,}  {'the verdict, ' if kept else 'NOT '}{callouts} callouts "
            f"({'each' if each else 'in brief'}), {rows} summary rows"
        )
    print("target: 3,000 models under 3 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
