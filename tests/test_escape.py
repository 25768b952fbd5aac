"""gate.escape: each hostile construct, one row each, in Markdown (as GitHub renders it) and on a runner's log.

Every row names what it would do if it got through, so that a mutation of the escaping functions (one
character left out of a table) fails the row of that construct.
"""

from __future__ import annotations

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from gate.escape import Trusted, capped, code, markdown, template_value, terminal


def html(text: str) -> str:
    """GitHub's Markdown engine, raw HTML kept as GitHub keeps the tags it allows."""
    return cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE).strip()


def in_table(cell: str) -> str:
    return html(f"| a | b |\n|---|---|\n| {cell} | x |")


# (hostile text, what it must render as in a paragraph: the text itself)
LITERAL = [
    ("a `code` span", "<p>a `code` span</p>"),
    ("*emphasis* and **strong**", "<p>*emphasis* and **strong**</p>"),
    ("~~struck~~", "<p>~~struck~~</p>"),
    ("[a link](https://phish.example/login)", "<p>[a link](https://phish.example/login)</p>"),
    ("![a pixel](https://tracker.example/p.png)", "<p>![a pixel](https://tracker.example/p.png)</p>"),
    ("[ref]: https://x.example", "<p>[ref]: https://x.example</p>"),
    ("<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>"),
    ("<!-- hides the rest", "<p>&lt;!-- hides the rest</p>"),
    ("<https://autolink.example>", "<p>&lt;https://autolink.example&gt;</p>"),
    ("&amp; &lt;", "<p>&amp;amp; &amp;lt;</p>"),
    ("$x^2$ math", "<p>$x^2$ math</p>"),
    ("trailing backslash \\", "<p>trailing backslash \\</p>"),
    ("\\`escaped\\`", "<p>\\`escaped\\`</p>"),
    # s31 F9: output `_a_` showed as *a*, the same as output `a`
    ("accuracy.max_drop (_a_) and (__b__) and _c_d_", "<p>accuracy.max_drop (_a_) and (__b__) and _c_d_</p>"),
]


@pytest.mark.parametrize(("hostile", "rendered"), LITERAL, ids=[h for h, _ in LITERAL])
def test_markdown_shows_each_construct_as_its_text(hostile, rendered) -> None:
    assert html(markdown(hostile)) == rendered


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a\\b", "a\\\\b"),
        ("a`b", "a\\`b"),
        ("a*b", "a\\*b"),
        ("a~b", "a\\~b"),
        ("a[b", "a\\[b"),  # either bracket escaped stops a link; both are, so neither depends on the other
        ("a]b", "a\\]b"),
        ("a|b", "a\\|b"),
        ("a$b", "a\\$b"),  # GitHub renders $…$ as math after cmark-gfm: only the text shows this one
        ("a&b", "a&amp;b"),
        ("a<b", "a&lt;b"),
        ("a>b", "a&gt;b"),
        ("a@b", "a@\u200bb"),
        ("a#b", "a#\u200bb"),
        ("a://b", "a\\://b"),
        ("a www.b", "a www\\.b"),
        ("plain text, 1.5 ms (www-x.y)", "plain text, 1.5 ms (www-x.y)"),
        ("_a_ b_ _c max_drop __d", "\\_a\\_ b\\_ \\_c max_drop \\_\\_d"),  # inside a word, _ is no emphasis: kept
    ],
)
def test_each_markdown_character_has_its_escape(text, escaped) -> None:
    assert markdown(text) == escaped


@pytest.mark.parametrize(
    ("hostile", "live"),
    [
        ("https://phish.example/login", "<a "),  # GitHub's autolink extension
        ("http://phish.example", "<a "),
        ("www.phish.example", "<a "),
        ("mail me: someone@phish.example", "<a "),
        ("@octocat please look", "@octocat"),  # a mention pings
        ("@org/team", "@org"),
        ("fixes #12 and owner/repo#34", "#12"),  # references make backlinks
    ],
)
def test_markdown_makes_no_link_mention_or_reference(hostile, live) -> None:
    rendered = html(markdown(hostile))
    assert live not in rendered
    assert rendered.replace("\u200b", "") == f"<p>{hostile}</p>"  # only a zero-width space was added


@pytest.mark.parametrize(
    ("hostile", "cell"),
    [
        ("a|b", "<td>a|b</td>"),
        ("line one\nline two", "<td>line one<br>line two</td>"),
        ("crlf\r\nline", "<td>crlf<br>line</td>"),
        ("cr\rline", "<td>cr<br>line</td>"),
        ("\nleading and trailing\n", "<td>leading and trailing</td>"),
    ],
)
def test_markdown_keeps_a_table_cell_one_cell(hostile, cell) -> None:
    assert f"{cell}\n<td>x</td>" in in_table(markdown(hostile))


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("bell\x07", "bell\\x07"),
        ("tab\there", "tab\\x09here"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b", "csi\\x9b"),
        ("rtl \u202eevil", "rtl \\u202eevil"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028separator", "line\\u2028separator"),
        ("not utf-8 \udcff", "not utf-8 \\xff"),
        ("emoji ✅ and µs stay", "emoji ✅ and µs stay"),
    ],
)
def test_invisible_characters_are_shown_escaped_in_markdown_and_on_the_terminal(hostile, shown) -> None:
    assert terminal(hostile) == shown
    assert html(markdown(hostile)) == f"<p>{shown}</p>"


def test_a_long_text_is_capped_with_an_ellipsis() -> None:
    assert capped("abcdef", 4) == "abc…"
    assert capped("abcd", 4) == "abcd"
    assert capped("abcd", None) == "abcd"
    assert markdown("<" * 10, limit=3) == "&lt;&lt;…"
    assert code("<" * 10, limit=3) == "<code>&lt;&lt;…</code>"


def test_code_shows_a_backtick_inside_code() -> None:
    """A Markdown code span would end at the backtick; the HTML code element shows it."""
    assert html(code("logs/x` @octocat `.log")) == "<p><code>logs/x` @\u200boctocat `.log</code></p>"


def test_templates_escape_everything_but_trusted_markdown() -> None:
    assert template_value("<b>") == "&lt;b&gt;"
    assert template_value(Trusted("<br>")) == "<br>"
    assert template_value(3.5) == "3.5"
    assert isinstance(markdown("plain"), Trusted) and isinstance(markdown("<"), Trusted)


@pytest.mark.parametrize(
    ("hostile", "printed"),
    [
        ("::stop-commands::pause", "\\x3a:stop-commands::pause"),
        ("  ::add-mask::secret", "  \\x3a:add-mask::secret"),
        ("\u3000::notice::fake", "\u3000\\x3a:notice::fake"),  # .NET's TrimStart strips Unicode spaces too
        ("name ##[error]fake annotation", "name ##\\x5berror]fake annotation"),  # the runner's legacy prefix
        ("###[warning]x", "###\\x5bwarning]x"),
        ("a\n::error::injected", "a\\x0a::error::injected"),
        ("a\r::error::injected", "a\\x0d::error::injected"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC: sets the terminal's title
        ("name: value :: fine", "name: value :: fine"),
    ],
)
def test_terminal_output_is_one_line_and_never_a_workflow_command(hostile, printed) -> None:
    assert terminal(hostile) == printed
    assert "\n" not in terminal(hostile) and "##[" not in terminal(hostile)


def test_terminal_lines_keeps_line_breaks_and_guards_each_line() -> None:
    assert terminal("first\n::stop-commands::x\n\x1b[2Jclear", lines=True) == (
        "first\n\\x3a:stop-commands::x\n\\x1b[2Jclear"
    )
