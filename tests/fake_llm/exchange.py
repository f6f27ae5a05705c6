"""Sending one answer: plain, streamed, or broken the way the scenario asks."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from . import anthropic_api, openai_api
from .http11 import ClientGone, Connection, HttpRequest
from .scenario import Scenario
from .wire import ApiError, Flavor, JsonResult, RecordedRequest, StreamResult, dumps

FLUSH_BYTES = 16 * 1024


@dataclass(frozen=True)
class Exchange:
    """A request being answered: where to write, what to record, and what frees a hung one."""

    conn: Connection
    request: HttpRequest
    record: RecordedRequest
    flavor: Flavor
    release_hung: asyncio.Event

    def _headers(self, content_type: str) -> dict[str, str]:
        request_id = "x-request-id" if self.flavor == "openai" else "request-id"
        return {"content-type": content_type, request_id: f"req_{secrets.token_hex(12)}"}

    async def respond(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> bool:
        """Send a whole answer; True when the connection can carry another request."""
        self.record.status = status
        headers = {**self._headers(content_type), **(extra or {})}
        await self.conn.respond(status, body, headers, keep_alive=self.request.keep_alive)
        return self.request.keep_alive

    async def refuse(self, error: ApiError) -> bool:
        render = anthropic_api.error_body if self.flavor == "anthropic" else openai_api.error_body
        return await self.respond(error.status, render(error), "application/json", error.headers)

    async def fail(self, status: int, model: str, retry_after: float | None) -> bool:
        """The injected failure, as the vendor sends it."""
        if self.flavor == "anthropic":
            body, content_type = anthropic_api.fault(status)
        else:
            body, content_type = openai_api.fault(status, model, retry_after)
        extra = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return await self.respond(status, body, content_type, extra)

    async def hang(self) -> None:
        """Hold the request until the client hangs up (ClientGone) or a reset releases it."""
        events = (self.release_hung, self.conn.gone)
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if self.conn.gone.is_set():
            raise ClientGone
        await self.conn.close()

    async def send_json(self, result: JsonResult, scenario: Scenario) -> bool:
        """Send a JSON answer; the stream knobs break its bytes (cut, stall, malformed)."""
        payload = dumps(result.body)
        per_token = (scenario.latency_per_token or 0) * result.tokens
        await self.conn.sleep((scenario.first_token_latency or 0) + per_token)
        if scenario.malformed_after is not None:
            payload = payload[: len(payload) // 2]
        if scenario.cut_after is None and scenario.stall_after is None:
            return await self.respond(200, payload, "application/json")
        self.record.status = 200
        headers = {**self._headers("application/json"), "content-length": str(len(payload))}
        await self.conn.write(self.conn.head(200, headers) + payload[: len(payload) // 2])
        if scenario.cut_after is not None:
            await self.conn.close()
        else:
            await self.hang()
        return False

    async def stream(self, result: StreamResult, scenario: Scenario) -> bool:
        """Send server-sent events, paced and broken as the scenario says.

        Unpaced events are sent in batches: thousands of tiny writes would cost more than the
        client's parsing, and a benchmark should measure the client.
        """
        conn = self.conn
        self.record.status = 200
        headers = {**self._headers("text/event-stream; charset=utf-8"), "cache-control": "no-cache"}
        await conn.start_chunked(200, headers)
        pending = bytearray()
        for sent, event in enumerate(result.events):
            if sent in (scenario.cut_after, scenario.stall_after):
                await conn.write(bytes(pending))
                if sent == scenario.cut_after:
                    await conn.close()
                else:
                    await self.hang()
                return False
            if sent == scenario.malformed_after:
                pending += conn.chunk(result.malformed)
            delay = (scenario.first_token_latency if sent == 0 else scenario.latency_per_token) or 0
            if delay > 0:
                await conn.write(bytes(pending))
                pending.clear()
                await conn.sleep(delay)
            pending += conn.chunk(event)
            if len(pending) >= FLUSH_BYTES:
                await conn.write(bytes(pending))
                pending.clear()
        await conn.write(bytes(pending) + conn.chunk(b""))
        return self.request.keep_alive
