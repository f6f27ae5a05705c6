"""Dify's `wikipedia/wikipedia_search`: the introductions of the best matching articles, from
the MediaWiki API of the wiki in the language asked for (WEFT_TOOLS_WIKIPEDIA_URL, whose
`{language}` is the wiki's code), through the guarded client."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from .base import BuiltinTool, ToolContext, ToolError, ToolParameter, ToolProvider, ToolResult
from .web import fetch

PROVIDER = ToolProvider(
    id="wikipedia",
    label="Wikipedia",
    description="Search Wikipedia and read the introductions of its articles.",
    icon="📖",
)
RESULTS = 3
MAX_EXTRACT_CHARS = 4000
MAX_QUERY_CHARS = 300
MAX_RESPONSE_BYTES = 2 << 20
# A wiki's code goes into a host name: only these shapes (en, zh-yue, simple …) are used.
_CODE = re.compile(r"^[a-z]{2,3}(-[a-z]{2,8})*$|^simple$")
# Dify's editor lets builders write the language out ("English"); the common ones map.
LANGUAGES = {
    "english": "en",
    "chinese": "zh",
    "中文": "zh",
    "简体中文": "zh",
    "繁體中文": "zh",
    "japanese": "ja",
    "日本語": "ja",
    "korean": "ko",
    "한국어": "ko",
    "german": "de",
    "deutsch": "de",
    "french": "fr",
    "français": "fr",
    "spanish": "es",
    "español": "es",
    "italian": "it",
    "italiano": "it",
    "portuguese": "pt",
    "português": "pt",
    "russian": "ru",
    "русский": "ru",
    "arabic": "ar",
    "dutch": "nl",
    "polish": "pl",
    "swedish": "sv",
    "turkish": "tr",
    "ukrainian": "uk",
    "vietnamese": "vi",
    "hindi": "hi",
    "indonesian": "id",
}


def language_code(language: str) -> str:
    """The wiki code of a language as a builder or model gives it; ToolError otherwise."""
    text = language.strip().lower().replace("_", "-")
    code = LANGUAGES.get(text, text)
    if not _CODE.match(code):
        raise ToolError(
            f"“{language}” is not a Wikipedia language: give a code such as en, de or zh."
        )
    return code


def _articles(payload: Any) -> list[dict[str, str]]:
    if not isinstance(payload, dict):
        raise ToolError("Wikipedia answered something that is not a search result.")
    if isinstance(payload.get("error"), dict):
        info = payload["error"].get("info") or payload["error"].get("code") or "unknown error"
        raise ToolError(f"Wikipedia refused the search: {info}")
    pages = (payload.get("query") or {}).get("pages") or []
    if isinstance(pages, dict):  # the API's older format: pages by id
        pages = list(pages.values())
    found = []
    for page in sorted(
        (p for p in pages if isinstance(p, dict) and not p.get("missing")),
        key=lambda p: p.get("index", 0),
    ):
        extract = str(page.get("extract") or "").strip()
        if len(extract) > MAX_EXTRACT_CHARS:
            extract = extract[:MAX_EXTRACT_CHARS] + " […]"
        found.append(
            {
                "title": str(page.get("title") or ""),
                "summary": extract,
                "url": str(page.get("fullurl") or ""),
            }
        )
    return found


class WikipediaSearch(BuiltinTool):
    """Searches Wikipedia; gives the best matching articles' introductions."""

    provider = PROVIDER
    name = "wikipedia_search"
    label = "Wikipedia Search"
    description = (
        "Search Wikipedia and read the introduction of the best matching articles. Use it "
        "for facts about people, places, events and things."
    )
    parameters = (
        ToolParameter("query", description="what to search for", required=True),
        ToolParameter(
            "language",
            description="language of the wiki: a code such as en, de or zh",
            default="en",
        ),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        query = values["query"].strip()[:MAX_QUERY_CHARS]
        code = language_code(values["language"])
        url = settings.WEFT_TOOLS_WIKIPEDIA_URL.replace("{language}", code)
        response = await fetch(
            url,
            what="Wikipedia",
            params={
                "action": "query",
                "format": "json",
                "formatversion": "2",
                "generator": "search",
                "gsrsearch": query,
                "gsrlimit": str(RESULTS),
                "prop": "extracts|info",
                "inprop": "url",
                "exintro": "1",
                "explaintext": "1",
                "exlimit": str(RESULTS),
                "redirects": "1",
            },
            headers={"Accept": "application/json"},
            max_bytes=MAX_RESPONSE_BYTES,
        )
        try:
            payload = response.json()
        except ValueError:
            raise ToolError("Wikipedia answered something that is not JSON.") from None
        articles = _articles(payload)
        if not articles:
            return ToolResult(text=f"No Wikipedia article matches “{query}”.", json=[])
        text = "\n\n".join(f"Page: {a['title']}\nSummary: {a['summary']}" for a in articles)
        return ToolResult(text=text, json=articles)


TOOLS = (WikipediaSearch,)
