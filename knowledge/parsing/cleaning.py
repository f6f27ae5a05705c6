"""Text normalisation shared by every parser, and the user-selectable cleaning rules."""

from __future__ import annotations

import re
import unicodedata

# C0/C1 controls except tab and newline, lone surrogates (undecodable input; PostgreSQL and
# UTF-8 refuse them), the BOM/zero-width no-break space, and the two noncharacters.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff\ufffe\uffff]")
_HORIZONTAL_SPACE = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_TRAILING_SPACE = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+$", re.MULTILINE)
_MANY_NEWLINES = re.compile(r"\n{3,}")
_MARKDOWN_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def normalise(text: str) -> str:
    """Make text safe to store and compare: NFC, \\n line ends, no control characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _UNSAFE_CHARS.sub("", text)
    return unicodedata.normalize("NFC", text)


def clean(text: str, *, collapse_whitespace: bool = True, remove_urls_emails: bool = False) -> str:
    """Apply the pre-processing rules a dataset chose (Dify's `remove_extra_spaces` and
    `remove_urls_emails`) on top of `normalise`."""
    text = normalise(text)
    if remove_urls_emails:
        # Keep the words of a Markdown link or image, drop where it points.
        text = _MARKDOWN_LINK.sub(r"\1", text)
        text = _EMAIL.sub("", text)
        text = _URL.sub("", text)
    if collapse_whitespace:
        text = _TRAILING_SPACE.sub("", text)
        text = _HORIZONTAL_SPACE.sub(" ", text)
        text = _MANY_NEWLINES.sub("\n\n", text)
        text = text.strip()
    return text
