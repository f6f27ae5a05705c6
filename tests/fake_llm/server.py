"""The loopback fake LLM: a real HTTP server on 127.0.0.1 in its own thread, scripted by tests.

It speaks OpenAI's and Anthropic's wire formats, so Weft's real clients are tested as they run
against a vendor. Everything a test controls is on `FakeLLM`; see README.md beside this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import anthropic_api, openai_api
from .exchange import Exchange
from .http11 import BadRequest, ClientGone, Connection, HttpRequest
from .routes import authenticate, route_for, speaks_anthropic
from .scenario import Reply, Scenario, ScriptQueue, ToolCall, model_preset, parse_scenario
from .wire import ApiError, Call, Flavor, RecordedRequest, StreamResult, dumps

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "sk-fake-llm-test-key-0000abcd"
DEFAULT_MODELS = (
    "fake-chat",
    "fake-embed",
    "fake-rerank",
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-sonnet-4-5",
    "claude-3-5-haiku-latest",
    "jina-reranker-v2-base-multilingual",
)


class FakeLLM:
    """A fake OpenAI + Anthropic server on a free loopback port, for tests and benchmarks."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        models: Iterable[str] = DEFAULT_MODELS,
        embedding_dim: int = 8,
    ) -> None:
        self.host = host
        self.port = port
        self._defaults = (api_key, tuple(models), embedding_dim)
        self.api_key = api_key
        self.models = list(models)
        self.embedding_dim = embedding_dim
        self.first_token_latency = 0.0
        self.latency_per_token = 0.0
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._replies: ScriptQueue[Reply] = ScriptQueue()
        self._faults: ScriptQueue[Scenario] = ScriptQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release_hung: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # Lifecycle

    def start(self) -> FakeLLM:
        """Listen in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("the fake LLM server is already running")
        ready = threading.Event()
        failures: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failures), name="fake-llm", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failures:
            self._thread.join()
            self._thread = None
            raise failures[0]
        return self

    def stop(self) -> None:
        """Drop every connection and stop the server thread."""
        if self._thread is None or self._loop is None or self._stopping is None:
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failures: list[BaseException]) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main(ready, failures))
        finally:
            self._loop.close()

    async def _main(self, ready: threading.Event, failures: list[BaseException]) -> None:
        try:
            server = await asyncio.start_server(
                self._on_connection, self.host, self.port, backlog=1024
            )
        except Exception as error:
            failures.append(error)
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._release_hung = asyncio.Event()
        self._stopping = asyncio.Event()
        ready.set()
        await self._stopping.wait()
        server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    # What tests read

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    @property
    def cancelled(self) -> int:
        """How many requests the client gave up on before the answer was complete."""
        return sum(request.cancelled for request in list(self.requests))

    @property
    def pending_replies(self) -> int:
        return len(self._replies)

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 2.0) -> None:
        """Poll until `predicate()` holds; the server works on its own thread meanwhile."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake LLM: condition not met within {timeout}s")
            time.sleep(0.005)

    # What tests script

    def script(
        self,
        reply: str | None = None,
        *,
        tool_calls: Iterable[ToolCall | Mapping[str, Any]] = (),
        json_output: Any = None,
        times: int = 1,
        match: str | None = None,
    ) -> None:
        """Queue the next answer(s). `match` limits it to requests whose prompt contains it."""
        calls = tuple(
            call
            if isinstance(call, ToolCall)
            else ToolCall(call["name"], call.get("arguments", {}), call.get("id"))
            for call in tool_calls
        )
        self._replies.push(Reply(reply, calls, json_output), times=times, match=match)

    def fail_next(
        self,
        status: int = 500,
        *,
        retry_after: float | None = None,
        times: int = 1,
        match: str | None = None,
    ) -> None:
        """Answer the next request(s) with this error status, in the vendor's error shape."""
        self._faults.push(
            Scenario(status=status, retry_after=retry_after), times=times, match=match
        )

    def cut_stream_after(self, n_chunks: int, *, times: int = 1, match: str | None = None) -> None:
        """Close the connection after `n_chunks` events, without the stream's end."""
        self._faults.push(Scenario(cut_after=n_chunks), times=times, match=match)

    def malformed_chunk_after(
        self, n_chunks: int, *, times: int = 1, match: str | None = None
    ) -> None:
        """Send a `data:` line that is not JSON after `n_chunks` events, then carry on."""
        self._faults.push(Scenario(malformed_after=n_chunks), times=times, match=match)

    def hang(
        self, *, after_chunks: int | None = None, times: int = 1, match: str | None = None
    ) -> None:
        """Never answer (or go silent after `after_chunks` events) until the client hangs up."""
        fault = Scenario(hang=True) if after_chunks is None else Scenario(stall_after=after_chunks)
        self._faults.push(fault, times=times, match=match)

    def reset(self) -> None:
        """Forget scripts, faults, records and knob changes; release requests left hanging.

        Done on the server's loop, between two of its steps: a request it has just recorded
        has then taken its fault too, so a reset never falls between the two (it did, from
        the test's thread: the fault a hanging request was to take was gone)."""
        loop = self._loop
        if loop is None or not loop.is_running() or threading.current_thread() is self._thread:
            self._reset_now()
            return
        done = threading.Event()

        def on_loop() -> None:
            try:
                self._reset_now()
            finally:
                done.set()

        loop.call_soon_threadsafe(on_loop)
        if not done.wait(timeout=10):
            raise RuntimeError("the fake LLM's loop did not answer a reset within 10 s")

    def _reset_now(self) -> None:
        self._replies.clear()
        self._faults.clear()
        self.requests.clear()
        self.errors.clear()
        self.api_key, models, self.embedding_dim = self._defaults
        self.models = list(models)
        self.first_token_latency = self.latency_per_token = 0.0
        if self._release_hung is not None:  # set free whatever waits on it, then a new one
            self._release_hung.set()
            self._release_hung = asyncio.Event()

    # Serving

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn = Connection(reader, writer)
        try:
            while (request := await conn.read_request()) is not None:
                if not await self._serve(conn, request) or not request.keep_alive:
                    break
        except BadRequest as error:
            with contextlib.suppress(ClientGone):
                await conn.respond(400, str(error).encode(), {}, keep_alive=False)
        except (ClientGone, asyncio.CancelledError):
            # Cancelled only by stop(); ending quietly keeps asyncio from logging each one.
            pass
        finally:
            await conn.close()

    async def _serve(self, conn: Connection, request: HttpRequest) -> bool:
        """Answer one request; False when the connection cannot carry another."""
        try:
            payload = json.loads(request.body) if request.body else {}
        except ValueError:
            payload = None
        record = RecordedRequest(
            request.method, request.path, request.query, request.headers, request.body, payload
        )
        self.requests.append(record)
        conn.watch()
        try:
            return await self._answer(conn, request, record)
        except ClientGone:
            record.cancelled = True
            return False
        except Exception as error:
            self.errors.append(traceback.format_exc())
            logger.exception("fake LLM crashed on %s %s", request.method, request.path)
            record.status = 500
            body = dumps({"error": {"message": f"fake LLM crashed: {error!r}", "type": "fake"}})
            await conn.respond(500, body, {"content-type": "application/json"}, keep_alive=False)
            return False
        finally:
            await conn.unwatch()

    def _known_model(self, model: str) -> bool:
        return model in self.models or model_preset(model) is not None

    async def _answer(
        self, conn: Connection, request: HttpRequest, record: RecordedRequest
    ) -> bool:
        route, deployment = route_for(request)
        anthropic = speaks_anthropic(request)
        flavor: Flavor = route.flavor if route else "anthropic" if anthropic else "openai"
        assert self._release_hung is not None
        exchange = Exchange(conn, request, record, flavor, self._release_hung)
        try:
            if route is None:
                raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
            authenticate(flavor, request.headers, self.api_key)
            body = record.json
            if not isinstance(body, dict):
                raise ApiError(400, "We could not parse the JSON body of your request.")
            model = deployment or body.get("model")
            if route.needs_model and not (isinstance(model, str) and self._known_model(model)):
                raise (anthropic_api if anthropic else openai_api).model_error(model)
            if route.validate:
                route.validate(body)
            try:
                asked = parse_scenario(request.headers.get("x-fake-scenario", ""))
            except ValueError as error:
                raise ApiError(400, str(error)) from None
        except ApiError as error:
            return await exchange.refuse(error)

        model = model if isinstance(model, str) else ""
        scenario = Scenario(
            first_token_latency=self.first_token_latency, latency_per_token=self.latency_per_token
        )
        scenario = asked.over((model_preset(model) or Scenario()).over(scenario))
        queued = self._faults.take(route.prompt(body))
        if queued is not None:
            scenario = queued.over(scenario)
        if scenario.hang:
            await exchange.hang()
            return False
        if scenario.status is not None and scenario.status >= 400:
            return await exchange.fail(scenario.status, model, scenario.retry_after)

        call = Call(
            body=body,
            model=model,
            query=request.query,
            scenario=scenario,
            take_reply=self._replies.take,
            embedding_dim=self.embedding_dim,
            models=tuple(self.models),
        )
        result = route.handle(call)
        if isinstance(result, StreamResult):
            return await exchange.stream(result, scenario)
        return await exchange.send_json(result, scenario)
