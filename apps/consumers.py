"""The Service API over a WebSocket (`/ws/v1/`): the same `app-` keys, tasks and events as
the HTTP API, for clients that keep one connection open.

Protocol (JSON text frames):
- authenticate with the `Authorization: Bearer app-…` header of the handshake, or with a
  first message `{"authorization": "Bearer app-…"}`; the server answers
  `{"event": "ready", "app_id", "mode"}`, or an `error` and closes (4401, 4403);
- `{"action": "chat-messages" | "completion-messages" | "workflows/run", "body": {...}}`
  starts a task (`body` as the HTTP endpoint's, `user` included) and follows it;
- `{"action": "subscribe", "task_id", "user", "last_event_id"?}` follows a task started
  elsewhere, from the start or after an event already received;
- `{"action": "stop", "task_id", "user"}` stops one.
Each of these may carry a `request_id`, echoed in its `task_started`, `subscribed`, `stopped`
or `error` answer. Every event of a task is sent as the JSON of its SSE `data:` line plus
`event_id`, its stream entry id (what `last_event_id` takes). A refused action answers
`{"event": "error", "status", "code", "message"}` and the connection stays open.

Leaving closes only the connection's reading of the streams: the tasks run on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tenants.aio import database, release_connections
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, WeftError

from .api.service import tasks
from .api.service.base import Caller, authenticate, check_user, count_request
from .api.service.streaming import Alive, check_event_id, follow
from .models import App

logger = logging.getLogger("weft.api")

ACTIONS: dict[str, tasks.Kind] = {
    "chat-messages": "chat",
    "completion-messages": "completion",
    "workflows/run": "workflow",
}
MAX_FOLLOWED = 32  # streams one connection may follow at once


class ServiceApiConsumer(AsyncJsonWebsocketConsumer):
    """One client's connection to one app's Service API."""

    async def connect(self) -> None:
        self.key: Any = None
        self.app: App | None = None
        self.followers: set[asyncio.Task] = set()
        await self.accept()
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in self.scope.get("headers", [])
        }
        self.stand_in = SimpleNamespace(
            META={
                "REMOTE_ADDR": (self.scope.get("client") or [None])[0],
                "HTTP_USER_AGENT": headers.get("user-agent", ""),
            }
        )
        if headers.get("authorization"):
            await self._authorize(headers["authorization"])

    async def disconnect(self, code: int) -> None:
        for follower in self.followers:
            follower.cancel()

    async def _authorize(self, header: Any) -> bool:
        try:
            if not isinstance(header, str):
                raise InvalidInput("authorization: must be a string.")
            async with database_work():
                self.key, self.app = await authenticate({"Authorization": header}, self.stand_in)
        except WeftError as exc:
            await self._error(exc)
            await self.close(code=4000 + exc.status)
            return False
        await self.send_json({"event": "ready", "app_id": str(self.app.pk), "mode": self.app.mode})
        return True

    async def _error(self, exc: WeftError, request_id: Any = None) -> None:
        body: dict[str, Any] = {
            "event": "error",
            "status": exc.status,
            "code": exc.code,
            "message": exc.message,
        }
        if request_id is not None:
            body["request_id"] = request_id
        await self.send_json(body)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, ensure_ascii=False, default=str)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = json.loads(text_data or (bytes_data or b"").decode() or "null")
        except (ValueError, UnicodeDecodeError):
            await self._error(InvalidInput("Each message must be a JSON object."))
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            await self._error(InvalidInput("Each message must be a JSON object."))
            return
        if self.app is None:
            if "authorization" not in content:
                await self._error(
                    WeftError(
                        'Authenticate first: send {"authorization": "Bearer app-…"}.',
                        code="unauthorized",
                        status=401,
                    )
                )
                await self.close(code=4401)
                return
            await self._authorize(content["authorization"])
            return
        request_id = content.get("request_id")
        try:
            async with database_work():
                await self._act(content, request_id)
        except WeftError as exc:
            await self._error(exc, request_id)
        except Exception:
            logger.exception("a WebSocket action failed")
            await self._error(
                WeftError("Internal server error.", code="internal_error", status=500),
                request_id,
            )

    async def _act(self, content: dict[str, Any], request_id: Any) -> None:
        action = content.get("action")
        if action in (*ACTIONS, "subscribe") and len(self.followers) >= MAX_FOLLOWED:
            raise InvalidInput(f"At most {MAX_FOLLOWED} tasks can be followed at once.")
        if action in ACTIONS:
            body = content.get("body")
            if not isinstance(body, dict):
                raise InvalidInput("body: must be an object (the HTTP endpoint's body).")
            caller = await self._caller(body.get("user"))
            started = await tasks.start(caller, ACTIONS[action], body, default_mode="streaming")
            task = started.task
            await self.send_json(
                {
                    "event": "task_started",
                    "request_id": request_id,
                    "task_id": task.task_id,
                    "message_id": task.message_id,
                    "conversation_id": task.conversation_id,
                    "workflow_run_id": task.workflow_run_id,
                }
            )
            self._follow(tasks.stream_of(task), "0-0", tasks.task_alive(task))
        elif action == "subscribe":
            caller = await self._caller(content.get("user"))
            after = check_event_id(content.get("last_event_id") or "0-0")
            task_id = str(content.get("task_id") or "")
            followed = await database(self._find)(caller, task_id)
            await self.send_json(
                {"event": "subscribed", "request_id": request_id, "task_id": task_id}
            )
            self._follow(followed.stream_id, after, followed.alive())
        elif action == "stop":
            caller = await self._caller(content.get("user"))
            kind: tasks.Kind = "chat"
            if caller.app.mode == App.Mode.WORKFLOW:
                kind = "workflow"
            elif caller.app.mode == App.Mode.COMPLETION:
                kind = "completion"
            await tasks.stop_task(caller, kind, str(content.get("task_id") or ""))
            await self.send_json(
                {"event": "stopped", "request_id": request_id, "task_id": content.get("task_id")}
            )
        else:
            raise InvalidInput(
                "action: must be one of chat-messages, completion-messages, workflows/run, "
                "subscribe, stop."
            )

    async def _caller(self, user: Any) -> Caller:
        assert self.app is not None  # noqa: S101 - actions come after authentication
        name = check_user(user)
        if name is None:
            raise InvalidInput("user: this field is required.")
        await count_request(self.key, self.app, name)
        return Caller(app=self.app, user=name, key=self.key)

    def _find(self, caller: Caller, task_id: str) -> tasks.Followed:
        with tenant_context(caller.tenant):
            if caller.app.mode == App.Mode.WORKFLOW:
                return tasks.find_run_task(caller, task_id)
            return tasks.find_message_task(caller, task_id)

    def _follow(self, stream_id: str, after: str, alive: Alive) -> None:
        follower = asyncio.create_task(self._relay(stream_id, after, alive))
        self.followers.add(follower)
        follower.add_done_callback(self.followers.discard)

    async def _relay(self, stream_id: str, after: str, alive: Alive) -> None:
        try:
            async with database_work():
                async for entry_id, body in follow(stream_id, after=after, alive=alive):
                    if body is not None:
                        event = json.loads(body)
                        event["event_id"] = entry_id
                        await self.send_json(event)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken relay must not take the connection down silently
            logger.exception("relaying the events of %s failed", stream_id)


@asynccontextmanager
async def database_work() -> AsyncIterator[None]:
    """What Django does around an HTTP request, for work a WebSocket message starts: its
    database calls run on a thread of its own, whose connection goes back to the pool at
    the end (a connection left in a thread that outlives its work is lost to the pool)."""
    async with ThreadSensitiveContext():
        try:
            yield
        finally:
            await sync_to_async(release_connections)()
