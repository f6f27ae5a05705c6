"""The http-request node: one HTTP call through the guarded client, as Dify's node makes it
(templates in URL, headers, params and body; API-key authorization; timeouts), and the
response as `status_code`, `body`, `headers` and `files`."""

from __future__ import annotations

import base64
from typing import Any

from providers.http import OutboundError, guarded_request

from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from .files import read_file, store_file

# Dify's HTTP node limits: text bodies up to 1 MB, binary (kept as a file) up to 10 MB.
MAX_TEXT_BYTES = 1 << 20
MAX_BINARY_BYTES = 10 << 20
DEFAULT_CONNECT, DEFAULT_READ, DEFAULT_WRITE = 10, 60, 20
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def parse_lines(text: str) -> list[tuple[str, str]]:
    """`key:value` lines (Dify's headers and params), keys trimmed; blank lines skipped."""
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return not kind or kind.startswith(_TEXT_TYPES) or kind.endswith(("+json", "+xml"))


@register
class HttpRequestExecutor(NodeExecutor):
    """Makes the call; any HTTP status is a result, only a failed exchange is an error."""

    types = ("http-request",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        url = ctx.render(data.url).strip()
        if not url:
            raise NodeFailed("The URL is empty.", error_type="InvalidURL")
        headers = [(k, ctx.render(v)) for k, v in parse_lines(ctx.render(data.headers))]
        params: list[tuple[str, str | int | float | bool | None]] = [
            (k, ctx.render(v)) for k, v in parse_lines(ctx.render(data.params))
        ]
        headers += self._authorization(ctx)
        request: dict[str, Any] = {}
        body = data.body
        if body is not None and body.type != "none":
            request = await self._body(ctx, body, headers)
        timeout = data.timeout
        connect = (timeout and (timeout.connect or timeout.max_connect_timeout)) or DEFAULT_CONNECT
        total = (
            connect
            + ((timeout and (timeout.read or timeout.max_read_timeout)) or DEFAULT_READ)
            + ((timeout and (timeout.write or timeout.max_write_timeout)) or DEFAULT_WRITE)
        )
        shown = {
            "method": data.method.upper(),
            "url": url,
            "headers": {k: ("***" if _secret_header(k) else v) for k, v in headers},
            "params": dict(params),
        }
        try:
            response = await guarded_request(
                data.method.upper(),
                url,
                headers=headers,
                params=params,
                timeout=total,
                connect_timeout=connect,
                max_bytes=MAX_BINARY_BYTES,
                verify=data.ssl_verify is not False,
                **request,
            )
        except OutboundError as exc:
            raise NodeFailed(exc.message, error_type=exc.code) from None
        content_type = response.headers.get("content-type", "")
        files: list[dict[str, Any]] = []
        if _is_text(content_type):
            if len(response.body) > MAX_TEXT_BYTES:
                raise NodeFailed(
                    f"The response is larger than {MAX_TEXT_BYTES >> 20} MB of text.",
                    error_type="ResponseTooLarge",
                )
            text = response.text
        else:
            text = ""
            files.append(
                await store_file(
                    ctx,
                    response.body,
                    filename=url.rsplit("/", 1)[-1].split("?")[0],
                    mime_type=content_type.split(";")[0].strip(),
                )
            )
        outputs = {
            "status_code": response.status_code,
            "body": text,
            "headers": dict(response.headers),
            "files": files,
        }
        return NodeResult(inputs=shown, outputs=outputs, process_data={"request": shown})

    def _authorization(self, ctx: NodeContext) -> list[tuple[str, str]]:
        auth = self.data.authorization
        if auth.type != "api-key" or auth.config is None:
            return []
        key = ctx.render(auth.config.api_key or "")
        kind = auth.config.type or "bearer"
        if kind == "bearer":
            return [("Authorization", f"Bearer {key}")]
        if kind == "basic":
            # A "user:password" pair is encoded; an already encoded value is sent as it is.
            token = base64.b64encode(key.encode()).decode() if ":" in key else key
            return [("Authorization", f"Basic {token}")]
        header = (auth.config.header or "").strip()
        if not header:
            raise NodeFailed("Custom authorization needs a header name.", error_type="InvalidAuth")
        return [(header, key)]

    async def _body(self, ctx: NodeContext, body, headers: list[tuple[str, str]]) -> dict:
        items = body.data if isinstance(body.data, list) else []
        first = items[0].value if items else (body.data if isinstance(body.data, str) else "")
        has_type = any(k.lower() == "content-type" for k, _ in headers)
        if body.type in ("json", "raw-text"):
            if not has_type:
                kind = "application/json" if body.type == "json" else "text/plain"
                headers.append(("Content-Type", kind))
            return {"content": ctx.render(first or "").encode()}
        if body.type == "x-www-form-urlencoded":
            return {"data": {ctx.render(i.key): ctx.render(i.value) for i in items if i.key}}
        if body.type == "form-data":
            fields: dict[str, str] = {}
            files = []
            for item in items:
                if not item.key:
                    continue
                if item.type == "file" and item.file:
                    content, name = await read_file(ctx, ctx.get(item.file))
                    files.append((ctx.render(item.key), (name, content)))
                else:
                    fields[ctx.render(item.key)] = ctx.render(item.value)
            return {"data": fields, "files": files or None}
        if body.type == "binary":
            selector = next((i.file for i in items if i.file), None)
            if not selector:
                raise NodeFailed("A binary body needs a file.", error_type="InvalidBody")
            content, _ = await read_file(ctx, ctx.get(selector))
            return {"content": content}
        raise NodeFailed(f"Unknown body type “{body.type}”.", error_type="InvalidBody")


def _secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in ("authorization", "proxy-authorization", "cookie") or "key" in lowered
