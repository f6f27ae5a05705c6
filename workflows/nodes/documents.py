"""The document-extractor node: the text of a file variable (or of each file of a list),
parsed by content as the knowledge base parses uploads (PDF, DOCX, HTML, Markdown, CSV,
text)."""

from __future__ import annotations

from typing import Any

from knowledge.parsing import ParseError, parse

from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from .files import MAX_FILE_BYTES, read_file


@register
class DocumentExtractorExecutor(NodeExecutor):
    """`text` is a string for one file, a list of strings for a file list."""

    types = ("document-extractor",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        value = ctx.get(self.data.variable_selector)
        if value is None:
            raise NodeFailed("The file variable is empty.", error_type="FileNotFound")
        files = value if isinstance(value, list) else [value]
        texts = [await self._text(ctx, file) for file in files]
        many = isinstance(value, list) or self.data.is_array_file
        names = [str(f.get("filename", "")) if isinstance(f, dict) else "" for f in files]
        return NodeResult(
            inputs={"files": names},
            outputs={"text": texts if many else texts[0]},
        )

    async def _text(self, ctx: NodeContext, file: Any) -> str:
        data, name = await read_file(ctx, file)
        try:
            parsed = await ctx.in_thread(lambda: parse(data, name, max_bytes=MAX_FILE_BYTES))
        except ParseError as exc:
            raise NodeFailed(f"“{name}”: {exc.reason}", error_type=exc.code) from None
        return parsed.text
