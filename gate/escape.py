"""The one place that makes untrusted text safe where gate writes it: Markdown, and the terminal.

Untrusted is every string a pull request controls: folder and file names,
gate.toml text, layer and tensor names inside a model file, and every error
message that echoes them; and everything read back from a file another
process wrote. In the PR comment a bot posts it, on a runner's stdout the
runner parses it, so each is escaped where it is written, by these functions:

- `markdown(text, limit)`: shown as itself in GitHub Markdown, wherever inline
  text may stand (a table cell, a callout, a summary line): no code span, link,
  image, raw HTML or `<!--`, mention, reference, table cell break or new line.
  `code(text)` shows it as code. The report's templates escape every `{{ }}`
  through `markdown` unless the value is `Trusted` (Markdown gate built itself).
- `terminal(text)`: one line with every control and format character shown
  escaped (`\\x1b`), so no ANSI/OSC sequence reaches the terminal, and no
  GitHub Actions workflow command: no line starts with `::`, and `##[` (the
  runner's legacy command prefix, which it honours anywhere in a line) never
  appears.

Standard library only: `gate comment` runs in a job with few packages.
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"


class Trusted(str):
    """Markdown gate wrote itself, from escaped parts, numbers and registry names: written as it is."""


# Characters GitHub's Markdown gives a meaning, each with what shows it as itself. Backslash escapes work
# for ASCII punctuation; HTML's own characters become entities; a zero-width space after @ and # stops
# GitHub from turning what follows into a mention (@user, @org/team) or a reference (#12, owner/repo#12).
_MARKDOWN = str.maketrans(
    {
        "\\": "\\\\",  # else a trailing backslash would escape the escape that follows it
        "`": "\\`",  # code spans
        "*": "\\*",  # emphasis
        "~": "\\~",  # strikethrough
        "[": "\\[",  # links [text](url), images ![alt](url), references [text][id]
        "]": "\\]",
        "|": "\\|",  # table cells
        "$": "\\$",  # math
        "&": "&amp;",  # entities
        "<": "&lt;",  # raw HTML, <!-- which hides the rest of a comment, <autolinks>
        ">": "&gt;",
        "@": "@\u200b",
        "#": "#\u200b",
    }
)
# GitHub turns bare URLs into links (its autolink extension): https://…, http://… and www.… (lower case
# only, as GFM's spec says); an escaped ":" or "." (shown as itself) keeps them text.
_WWW_LINK = re.compile(r"\bwww\.")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# "_" emphasises (_a_, __a__) only where it is not inside a word: there it is escaped, and `max_drop` or
# `breast_cancer_mlp` are written as they are.
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# Text without any of the above (most figures and names: plain ASCII) is written as it is.
_NEEDS_ESCAPING = re.compile(r"[\\`*~\[\]|$&<>@#]|[^\x20-\x7e]|://|\bwww\.|" + _EMPHASIS_UNDERSCORE.pattern)
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph-separator characters.
_INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# The runner's workflow commands: `::name::` at a line's start, `##[name]` anywhere (actions/runner's
# ActionCommand.TryParseV2 and TryParse).
_LEGACY_COMMAND = "##["


def markdown(text: object, limit: int | None = None) -> Trusted:
    """`text` as GitHub shows it literally in inline Markdown; at most `limit` characters of it, then "…"."""
    return Trusted(_markdown(capped(str(text), limit)))


def code(text: object, limit: int | None = None) -> Trusted:
    """`text` shown as code: an HTML code element, inside which the escaped text reads as itself.

    A Markdown code span cannot hold untrusted text: a backtick in it ends the span.
    """
    return Trusted(f"<code>{markdown(text, limit)}</code>")


# What reads as itself in a Markdown code span, where a backslash escape is shown as it is: a check's name.
_PLAIN = re.compile(r"[A-Za-z0-9_.() -]{1,300}")


def code_span(text: object) -> Trusted:
    """`text` as a Markdown code span when it is plain (a check's name, `fidelity.min_snr_db (_aux)`), else `code`.

    Inside a code span nothing is escaped, so `markdown`'s escapes would show (a stray backslash before `_`).
    """
    text = str(text)
    return Trusted(f"`{text}`") if _PLAIN.fullmatch(text) else code(text)


def template_value(value: object) -> str:
    """What a template's `{{ value }}` writes: Trusted Markdown as it is, anything else escaped."""
    return value if isinstance(value, Trusted) else _markdown(str(value))


def terminal(text: object, *, lines: bool = False) -> str:
    """`text` safe to print on a terminal and a GitHub Actions runner's log.

    One line, line breaks shown escaped (`\\x0a`); with `lines`, line breaks are kept and each line is made safe.
    """
    parts = str(text).split("\n") if lines else [str(text)]
    return "\n".join(_terminal_line(part) for part in parts)


def capped(text: str, limit: int | None) -> str:
    """`text`, or its first `limit` - 1 characters and "…" when it is longer."""
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def _markdown(text: str) -> str:
    if not _NEEDS_ESCAPING.search(text):
        return text
    escaped = _EMPHASIS_UNDERSCORE.sub(r"\\_", _visible(text, keep="\r\n").translate(_MARKDOWN))
    escaped = _WWW_LINK.sub(lambda match: match.group()[:3] + "\\.", escaped.replace("://", "\\://"))
    return "<br>".join(_LINE_BREAK.split(escaped.strip("\r\n")))


def _terminal_line(text: str) -> str:
    line = _visible(text).replace(_LEGACY_COMMAND, "##\\x5b")
    if line.lstrip().startswith("::"):  # the runner trims leading whitespace before it looks
        line = line.replace(":", "\\x3a", 1)
    return line


def _visible(text: str, keep: str = "") -> str:
    """`text` with its control and format characters (but those in `keep`) shown as escapes."""

    def shown(match: re.Match[str]) -> str:
        character = match.group()
        if character in keep or unicodedata.category(character) not in _INVISIBLE:
            return character
        code_point = ord(character)
        if 0xDC80 <= code_point <= 0xDCFF:  # a byte of a file name that is not UTF-8 (surrogateescape)
            return f"\\x{code_point - 0xDC00:02x}"
        if code_point < 0x100:
            return f"\\x{code_point:02x}"
        return f"\\u{code_point:04x}" if code_point < 0x10000 else f"\\U{code_point:08x}"

    return _NOT_PLAIN_ASCII.sub(shown, text)
