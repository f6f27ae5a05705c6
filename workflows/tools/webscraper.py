"""Dify's `webscraper/webscraper`: a page fetched through the guarded client, its readable
text extracted by the knowledge base's parsers (HTML without scripts, navigation and
boilerplate; PDF, DOCX, Markdown and plain text as well)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from knowledge.parsing import ParsedDocument, ParseError, parse, parse_html

from .base import BuiltinTool, ToolContext, ToolError, ToolParameter, ToolProvider, ToolResult
from .web import fetch

PROVIDER = ToolProvider(
    id="webscraper",
    label="Web Scraper",
    description="Read the text of a web page.",
    icon="🕸️",
)
DEFAULT_USER_AGENT = "Mozilla/5.0 (compatible; Weft web scraper)"
# Pages are read up to this size: the readable text of a page rarely needs more.
MAX_PAGE_BYTES = 4 << 20
# Dify's MAX_VARIABLE_SIZE is 200 KB: the text stays well under it.
MAX_TEXT_CHARS = 100_000
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _readable(body: bytes, text: str, content_type: str, filename: str) -> ParsedDocument:
    if content_type in _HTML_TYPES:
        return parse_html(text)
    return parse(body, filename)


class WebScraper(BuiltinTool):
    """Fetches a web page and gives its readable text."""

    provider = PROVIDER
    name = "webscraper"
    label = "Web Scraper"
    description = "Fetch a web page by its URL and read its text."
    parameters = (
        ToolParameter("url", description="the http or https URL of the page", required=True),
        ToolParameter(
            "user_agent",
            description="User-Agent header sent with the request",
            default=DEFAULT_USER_AGENT,
            form="form",
        ),
        # Dify summarises with the workspace model when asked; Weft gives the whole text
        # (an LLM node after the tool can summarise).
        ToolParameter(
            "generate_summary", "boolean", "summarise the text", default=False, form="form"
        ),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        url = values["url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ToolError(f"“{url[:200]}” is not an http or https URL.")
        if any(ord(char) < 32 or ord(char) == 127 for char in values["user_agent"]):
            raise ToolError("The user agent must be one line of printable text.")
        response = await fetch(
            url,
            what="The page",
            headers={"User-Agent": values["user_agent"], "Accept": "text/html,*/*;q=0.8"},
            max_bytes=MAX_PAGE_BYTES,
            truncate=True,
        )
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        filename = urlsplit(response.url).path.rsplit("/", 1)[-1]
        try:
            # Parsing a large page takes a while: not on the event loop other nodes run on.
            document = await asyncio.to_thread(
                _readable, response.body, response.text, content_type, filename
            )
        except ParseError as exc:
            raise ToolError(f"No readable text at {url[:200]}: {exc.reason}") from None
        text = document.text
        if len(text) > MAX_TEXT_CHARS:
            text = text[:MAX_TEXT_CHARS] + "\n[…]"
        title = str(document.metadata.get("title") or "").strip()
        if title and not text.startswith(title):
            text = f"{title}\n\n{text}"
        return ToolResult(text=text)


TOOLS = (WebScraper,)
