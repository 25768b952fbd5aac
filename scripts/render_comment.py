"""Render a report as GitHub shows the PR comment, and take a screenshot of it: docs/comment.png

    npm install --prefix /tmp/ghcss github-markdown-css    # GitHub's stylesheet
    apt-get install chromium fonts-noto-color-emoji        # a headless browser, and emoji as GitHub shows them
    python scripts/render_comment.py gate-out/comment.md [--css FILE] [--out docs/comment.png]

The Markdown is rendered by cmark-gfm (cmarkgfm, GitHub's own engine), GitHub's
alerts are styled as GitHub styles them, Mermaid blocks are left as code
(GitHub draws them with its own renderer), and Chromium draws the page at a
comment's width.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import cmarkgfm
from cmarkgfm.cmark import Options

REPO = Path(__file__).resolve().parent.parent
ALERT = re.compile(r"<blockquote>\n<p>\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]\n")
COLORS = {"NOTE": "#0969da", "TIP": "#1a7f37", "IMPORTANT": "#8250df", "WARNING": "#9a6700", "CAUTION": "#cf222e"}


def page(markdown: str, css: str) -> str:
    body = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    body = ALERT.sub(
        lambda m: (
            f'<blockquote style="border-left-color:{COLORS[m.group(1)]}"><p>'
            f'<b style="color:{COLORS[m.group(1)]}">{m.group(1).title()}</b><br>'
        ),
        body,
    )
    return (
        "<!doctype html><meta charset=utf-8><style>" + css + "body{margin:0;background:#fff}"
        ".markdown-body{box-sizing:border-box;width:900px;padding:24px;border:1px solid #d0d7de;"
        "border-radius:6px;margin:16px}</style><article class=markdown-body>" + body + "</article>"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("markdown", type=Path)
    parser.add_argument(
        "--css", type=Path, default=Path("/tmp/ghcss/node_modules/github-markdown-css/github-markdown-light.css")
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "comment.png")
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args()
    html = page(args.markdown.read_text(encoding="utf-8"), args.css.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "comment.html").write_text(html, encoding="utf-8")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp}/profile",
                "--hide-scrollbars",
                f"--window-size=940,{args.height}",
                f"--screenshot={args.out.resolve()}",
                f"file://{tmp}/comment.html",
            ],
            check=True,
            capture_output=True,
        )
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
