"""Just enough HTTP/1.1 over asyncio streams: keep-alive, chunked bodies, and disconnect notice.

Hand-written rather than a framework so the fake controls the bytes on the wire: it can stop
mid-chunk, send a broken line, or hold a request forever, and see the client hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

MAX_HEAD_BYTES = 64 * 1024
READ_BYTES = 64 * 1024


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


class BadRequest(Exception):
    """The bytes received are not an HTTP/1.1 request this server understands."""


@dataclass(frozen=True)
class HttpRequest:
    """One parsed request; header names are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Site Overloaded" if status == 529 else "Unknown"


class Connection:
    """One client connection; requests on it are served one after the other."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()
        self._watcher: asyncio.Task[None] | None = None
        self.gone = asyncio.Event()

    async def _fill(self) -> bool:
        try:
            data = await self._reader.read(READ_BYTES)
        except ConnectionError:
            data = b""
        if not data:
            self.gone.set()
            return False
        self._buffer += data
        return True

    async def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill():
                raise ClientGone
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise BadRequest("line too long")
            if not await self._fill():
                raise ClientGone
        return await self._read_exact(end + 2)

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = (await self._read_line()).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size == 0:
                while await self._read_line() != b"\r\n":
                    pass
                return bytes(body)
            body += await self._read_exact(size)
            await self._read_exact(2)

    async def read_request(self) -> HttpRequest | None:
        """The next request, or None when the client closed the connection between requests."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise BadRequest("request head too large")
            if not await self._fill():
                return None
        head = (await self._read_exact(end + 4)).decode("latin-1").split("\r\n")
        try:
            method, target, version = head[0].split(" ", 2)
        except ValueError:
            raise BadRequest(f"bad request line {head[0]!r}") from None
        headers: dict[str, str] = {}
        for line in filter(None, head[1:]):
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked()
        else:
            try:
                body = await self._read_exact(int(headers.get("content-length", "0")))
            except ValueError:
                raise BadRequest("bad content-length") from None
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        url = urlsplit(target)
        return HttpRequest(
            method=method.upper(),
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            keep_alive=keep_alive,
        )

    def watch(self) -> None:
        """Start noticing a hang-up while the answer is produced (the request is fully read)."""

        async def watch() -> None:
            while await self._fill():
                pass

        self._watcher = asyncio.create_task(watch())

    async def unwatch(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def sleep(self, seconds: float) -> None:
        """Wait, but raise ClientGone as soon as the client hangs up."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), seconds)
        if self.gone.is_set():
            raise ClientGone

    async def write(self, data: bytes) -> None:
        if self.gone.is_set() or self._writer.is_closing():
            raise ClientGone
        self._writer.write(data)
        try:
            await self._writer.drain()
        except ConnectionError as error:
            self.gone.set()
            raise ClientGone from error

    @staticmethod
    def head(status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason(status)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def respond(
        self, status: int, body: bytes, headers: dict[str, str], *, keep_alive: bool
    ) -> None:
        headers = {
            **headers,
            "content-length": str(len(body)),
            "connection": "keep-alive" if keep_alive else "close",
        }
        await self.write(self.head(status, headers) + body)

    async def start_chunked(self, status: int, headers: dict[str, str]) -> None:
        headers = {**headers, "transfer-encoding": "chunked", "connection": "keep-alive"}
        await self.write(self.head(status, headers))

    @staticmethod
    def chunk(data: bytes) -> bytes:
        """One piece of a chunked body; an empty one ends the body."""
        return b"%x\r\n%b\r\n" % (len(data), data)

    async def close(self) -> None:
        """Close after flushing what was written: the client sees the data, then the end."""
        await self.unwatch()
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
