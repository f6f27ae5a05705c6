"""What crosses the sockets: length-prefixed JSON between the pool and a worker, one-byte tags
plus JSON (and passed fds) between the pool and the zygote."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

# Frames between the pool and a worker: an unsigned 64-bit length, then UTF-8 JSON.
HEADER = struct.Struct("!Q")

# Tags on the zygote's control socket (SOCK_SEQPACKET: one message per send).
ZYGOTE_READY = b"Z"  # zygote -> pool: {"base"}, the folder of the working folders
SPAWN = b"S"  # pool -> zygote: fork one worker
WORKER = b"W"  # zygote -> pool: {"pid"}, with fds [socket, pidfd]
EXITED = b"X"  # zygote -> pool: {"pid", "signal" | "code", "cpu"}
SPAWN_FAILED = b"F"  # zygote -> pool: {"error"}

# First byte a worker sends: confined and waiting for its request, or could not confine.
WORKER_READY = b"R"
WORKER_BROKEN = b"E"

CONTROL_MESSAGE_MAX = 4096


def dumps(value: Any) -> bytes:
    """Strict JSON: no NaN/Infinity, no lone surrogates, UTF-8."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Blocking read of `size` bytes; EOFError when the peer closes first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise EOFError
        received += count
    return bytes(buffer)


def control_message(tag: bytes, body: dict[str, Any]) -> bytes:
    return tag + json.dumps(body).encode()


def parse_control(message: bytes) -> tuple[bytes, dict[str, Any]]:
    body: dict[str, Any] = json.loads(message[1:]) if len(message) > 1 else {}
    return message[:1], body
