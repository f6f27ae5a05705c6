"""Inside a confined worker: read one request, run the user's `main`, answer with the result
or with what went wrong. Nothing here is trusted by the pool, which checks every answer;
this side only tries to make the answer useful."""

from __future__ import annotations

import _thread
import io
import json
import linecache
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from .options import SandboxOptions
from .protocol import HEADER, dumps, frame, recv_exactly

CODE_FILENAME = "<code>"
MAX_MESSAGE_CHARS = 4000


class CappedText(io.TextIOBase):
    """A text stream that keeps the first `limit` characters written to it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self._limit - self._size
        if len(text) > room:
            self._truncated = True
        if room > 0:
            self._parts.append(text[:room])
            self._size += min(len(text), room)
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self._parts)
        return _clean(text + "\n[truncated]" if self._truncated else text)


def serve(sock: socket.socket, options: SandboxOptions) -> None:
    """Answer exactly one request on `sock`."""
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if size > options.max_input_bytes:
        response: dict[str, Any] = {"kind": "input", "message": "the request is too large"}
    else:
        request = json.loads(recv_exactly(sock, size))
        response = run_python(request["code"], request["inputs"], options.max_log_chars)
    sock.sendall(frame(_encode(response, options.max_output_bytes)))


def limit_threads(limit: int) -> None:
    """Refuse new threads past `limit`, with a clear error. Cooperative: code that digs out
    the original function still meets the memory limit and the timeout, which bound it."""
    start = _thread.start_new_thread

    def start_new_thread(
        function: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
    ) -> int:
        if _thread._count() + 1 >= limit:  # _count() leaves out the main thread
            raise RuntimeError(f"can't start new thread: the sandbox allows {limit} threads")
        return start(function, args) if kwargs is None else start(function, args, kwargs)

    _thread.start_new_thread = start_new_thread
    threading._start_new_thread = start_new_thread  # type: ignore[attr-defined]


def rehearse() -> None:
    """Run a trivial main before the real request, while nobody waits: the pages it touches
    (shared with the zygote, copied on first write) are copied now rather than on the clock."""
    _encode(run_python("def main():\n    return {'ok': 1}\n", {}, 64), 1024)


def run_python(code: str, inputs: dict[str, Any], max_log_chars: int) -> dict[str, Any]:
    """Run `code`, call its `main(**inputs)`; the answer's `kind` says how it ended."""
    stdout, stderr = CappedText(max_log_chars), CappedText(max_log_chars)
    sys.stdout, sys.stderr = stdout, stderr
    try:
        response = _call_main(code, inputs)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    response["stdout"] = stdout.getvalue()
    response["stderr"] = stderr.getvalue()
    return response


def _call_main(code: str, inputs: dict[str, Any]) -> dict[str, Any]:
    try:
        compiled = compile(code, CODE_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return {
            "kind": "syntax",
            "message": _clean(f"{type(exc).__name__}: {exc.msg}"),
            "line": exc.lineno,
            "offset": exc.offset,
            "text": _clean((exc.text or "").rstrip("\n")),
        }
    except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
        return {"kind": "syntax", "message": _clean(str(exc)), "line": None, "offset": None}
    # Tracebacks show the user's source lines.
    linecache.cache[CODE_FILENAME] = (len(code), None, code.splitlines(True), CODE_FILENAME)
    # As Dify runs it: a script whose __name__ is "__main__".
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compiled, namespace)  # noqa: S102 (running user code is the point; it is confined)
        main = namespace.get("main")
        if not callable(main):
            return {"kind": "main", "message": "The code must define a function main(...)."}
        result = main(**inputs)
    except MemoryError:
        return {"kind": "memory"}
    except BaseException as exc:  # SystemExit too: main must return, not exit
        return _describe(exc)
    if not isinstance(result, dict):
        return {
            "kind": "main",
            "message": f"main() must return a dict, not {type(result).__name__}.",
        }
    return {"kind": "ok", "result": result}


def _describe(exc: BaseException) -> dict[str, Any]:
    summary = traceback.TracebackException.from_exception(exc)
    _keep_user_frames(summary, set())
    headline = "".join(summary.format_exception_only()).strip()
    try:
        message = str(exc)
    except Exception:  # a user exception whose __str__ raises
        message = ""
    return {
        "kind": "exception",
        "type": type(exc).__qualname__,
        "message": _clean(message[:MAX_MESSAGE_CHARS]),
        "headline": _clean(headline[:MAX_MESSAGE_CHARS]),
        "traceback": _clean("".join(summary.format())[-MAX_MESSAGE_CHARS * 4 :]),
        "errno": exc.errno if isinstance(exc, OSError) else None,
    }


def _keep_user_frames(summary: traceback.TracebackException, seen: set[int]) -> None:
    """Drop the sandbox's own frames from a traceback and from its causes."""
    if id(summary) in seen:
        return
    seen.add(id(summary))
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if frame.filename == CODE_FILENAME]
    )
    for linked in (summary.__cause__, summary.__context__, *(summary.exceptions or ())):
        if linked is not None:
            _keep_user_frames(linked, seen)


def _encode(response: dict[str, Any], max_bytes: int) -> bytes:
    logs = {"stdout": response.get("stdout", ""), "stderr": response.get("stderr", "")}
    try:
        payload = dumps(response)
    except MemoryError:
        return dumps({"kind": "memory", **logs})
    except (TypeError, ValueError, RecursionError) as exc:
        # UnicodeEncodeError (a lone surrogate) is a ValueError too.
        message = _clean(f"The result of main() is not JSON-compatible: {exc}.")
        return dumps({"kind": "result", "message": message[:MAX_MESSAGE_CHARS], **logs})
    if len(payload) > max_bytes:
        return dumps({"kind": "too_large", "size": len(payload), **logs})
    return payload


def _clean(text: str) -> str:
    """Text safe to encode as UTF-8 (lone surrogates replaced)."""
    return text.encode("utf-8", "replace").decode("utf-8")
