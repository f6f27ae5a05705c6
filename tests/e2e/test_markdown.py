"""The portal's Markdown renderer (apps/static/portal/markdown.js) in the browser: what it
makes of Markdown, and that markup in the text never becomes markup on the page."""

from __future__ import annotations

from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "apps" / "static" / "portal" / "markdown.js"


@pytest.fixture
def render(page):
    """render(text) -> the HTML WeftMarkdown.render(text) builds (as the DOM serialises it)."""
    page.set_content("<!doctype html><div id='out'></div>")
    page.add_script_tag(content=SCRIPT.read_text())

    def run(text: str) -> str:
        return page.evaluate(
            "text => { const out = document.getElementById('out'); out.textContent = '';"
            " out.appendChild(WeftMarkdown.render(text)); return out.innerHTML; }",
            text,
        )

    return run


def test_blocks_and_inline_marks(render):
    html = render(
        "# Title\n\nSome **bold**, *em*, `code` and ~~gone~~.\n\n"
        "- one\n- two\n  - nested\n\n1. first\n2. second\n\n> quoted\n\n---\n"
    )
    assert "<h3>Title</h3>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert "<code>code</code>" in html and "<del>gone</del>" in html
    assert "<ul><li>one</li><li><p>two</p><ul><li>nested</li></ul></li></ul>" in html
    assert "<ol><li>first</li><li>second</li></ol>" in html
    assert "<blockquote><p>quoted</p></blockquote>" in html
    assert "<hr>" in html


def test_code_fences_tables_and_links(render):
    html = render(
        "```python\nprint('<b>hi</b>')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "[docs](https://example.com/x) and https://example.org/y."
    )
    assert '<pre class="weft-code"><code data-language="python">' in html
    assert "print('&lt;b&gt;hi&lt;/b&gt;')" in html
    assert "<th>a</th>" in html and "<td>2</td>" in html
    link = '<a href="https://example.com/x" rel="noopener noreferrer nofollow" target="_blank">'
    assert link + "docs</a>" in html
    assert '<a href="https://example.org/y"' in html and "example.org/y</a>." in html


def test_an_unclosed_fence_while_streaming_runs_to_the_end(render):
    assert render("Look:\n```\npartial line") == (
        '<p>Look:</p><pre class="weft-code"><code>partial line</code></pre>'
    )


@pytest.mark.parametrize(
    "text",
    [
        "<script>window.__xss = 1</script>",
        '<img src=x onerror="window.__xss = 1">',
        "[click](javascript:window.__xss=1)",
        "[click](JaVaScRiPt:window.__xss=1)",
        "[x](data:text/html,<script>window.__xss=1</script>)",
        "**<svg onload=window.__xss=1>**",
        "| <b onmouseover=window.__xss=1>x</b> |\n|---|\n| y |",
    ],
)
def test_markup_in_the_text_stays_text(page, render, text):
    html = render(text)
    assert "<script" not in html and "<img" not in html and "<svg" not in html
    assert "<b " not in html and 'href="javascript' not in html.lower()
    assert 'href="data:' not in html
    assert page.evaluate("() => window.__xss === undefined")
