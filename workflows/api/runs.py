"""Workflows API, the async part: start a run, follow its events, stop it, resume it.

These are async views (see ARCHITECTURE, "Decisions that matter for speed"): a run executes
as a detached task on the web process's event loop, so a client that goes away never stops
it, and its events are read from the run's Redis stream, so any web process can serve them
and a client reconnecting with `Last-Event-ID` resumes where it left.

Each view is a DRF APIView for its description in the OpenAPI schema only: `dispatch` is
async and replaces DRF's (sync) request handling with the same `wk-` key check, the same
role matrix and the same error envelope. Console sessions are not accepted here.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions as drf
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from tenants.aio import database
from tenants.api.authentication import ManagementKeyAuthentication, authenticate_management_key
from tenants.api.errors import describe
from tenants.exceptions import Conflict, InvalidInput, WeftError
from tenants.http import require_tenant
from tenants.models import Tenant
from tenants.permissions import allowed

from .. import streams
from ..models import WorkflowRun
from ..runner import run_create, run_detached, run_resume_prepare, run_stop
from . import selectors
from . import serializers as s

# A ping this often on a quiet stream keeps proxies from closing it (Dify's interval).
KEEPALIVE_SECONDS = 10.0
PING = b"event: ping\n\n"
_ENTRY_ID = re.compile(r"^\d+-\d+$")

SSE_RESPONSE = OpenApiResponse(
    OpenApiTypes.STR,
    description="Dify's server-sent events: per event an `id:` line (its stream entry id) and "
    "`data: {json}`; `event: ping` every 10 s while nothing happens. The stream ends after "
    "`workflow_finished` or `workflow_paused`.",
)


class AsyncManagementView(APIView):
    """An async endpoint of the management API. `permission_actions` maps each HTTP method
    it serves to its action in the role matrix, for `permission_kind`."""

    # What the schema shows: keys only, JSON bodies only.
    authentication_classes = [ManagementKeyAuthentication]
    parser_classes = [JSONParser]
    permission_kind = "workflow"
    permission_actions: dict[str, str] = {}

    async def dispatch(  # type: ignore[override]  # async, in place of DRF's sync dispatch
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        try:
            principal = await authenticate_management_key(request)
            method = (request.method or "").lower()
            action = self.permission_actions.get(method)
            if action is None:
                raise drf.MethodNotAllowed(request.method or "")
            if not allowed(principal, self.permission_kind, action):
                raise drf.PermissionDenied()
            return await getattr(self, method)(request, *args, **kwargs)
        except (WeftError, drf.APIException) as exc:
            if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
                exc.auth_header = ManagementKeyAuthentication.keyword  # type: ignore[union-attr]
            described = describe(exc)
            assert described is not None  # noqa: S101 - both kinds are described
            body, headers = described
            return JsonResponse(body, status=body["status"], headers=headers)


def _body(request: HttpRequest, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The JSON body, checked by the serializer (an empty body is an empty object)."""
    if request.body and request.content_type != "application/json":
        raise drf.UnsupportedMediaType(request.content_type or "")
    try:
        data = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise drf.ParseError(f"JSON parse error - {exc}") from None
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _sse(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy (nginx) passes each event on at once
    return response


async def run_events(run_id: str, *, after: str, follow: bool) -> AsyncIterator[bytes]:
    """The run's events after entry `after` as SSE, up to its end or pause. Following a
    running run, a quiet stream gets a ping, or ends if the run has stopped running without
    its last event reaching the stream (its process died); not following, only what the
    stream holds."""
    block_ms = int(KEEPALIVE_SECONDS * 1000) if follow else 1
    async for entry_id, body in streams.read(run_id, after=after, block_ms=block_ms):
        if body is not None:
            yield f"id: {entry_id}\ndata: {body}\n\n".encode()
        elif follow and await _running(run_id):
            yield PING
        else:
            return


async def _running(run_id: str) -> bool:
    # Unscoped: the middleware has reset the tenant context by the time a streamed body is
    # read; the run was found in the caller's tenant before its stream began.
    return await WorkflowRun.dangerously_unscoped.filter(
        pk=run_id, status=WorkflowRun.Status.RUNNING
    ).aexists()


async def _when_done(task: asyncio.Task, run_id: uuid.UUID) -> JsonResponse:
    """Dify's blocking answer, once the run has ended or paused."""
    # asyncio.wait, not `await task`: a client that goes away cancels this view, and a task
    # awaited by a cancelled coroutine is cancelled with it.
    await asyncio.wait([task])
    run = await WorkflowRun.objects.aget(pk=run_id)
    return JsonResponse(s.BlockingRunOut(run).data)


def _create_run(tenant: Tenant, workflow_id: str, values: dict[str, Any]) -> WorkflowRun:
    workflow = selectors.access_workflow(workflow_id)
    version = None
    if "version" in values:
        version = selectors.version_named_in(workflow, values["version"], param="version")
    return run_create(
        tenant=tenant,
        workflow=workflow,
        inputs=values["inputs"],
        version=version,
        triggered_from=WorkflowRun.TriggeredFrom.API,
    )


class RunStartView(AsyncManagementView):
    permission_actions = {"post": "run"}

    @extend_schema(
        operation_id="workflows_run",
        request=s.RunIn,
        responses={
            (200, "application/json"): s.BlockingRunOut,
            (200, "text/event-stream"): SSE_RESPONSE,
            400: OpenApiResponse(
                description="Bad inputs (`invalid_param`, naming the input), a version the "
                "workflow does not have, or `workflow_invalid` with `errors`."
            ),
        },
    )
    async def post(self, request: HttpRequest, pk: str) -> HttpResponseBase:
        """Run the draft (or a published version). The run goes on if the client leaves;
        `blocking` answers when it ends (or pauses), `streaming` streams its events."""
        values = _body(request, s.RunIn)
        run = await database(_create_run)(require_tenant(request), pk, values)
        task = run_detached(run.pk)
        if values["response_mode"] == "streaming":
            return _sse(run_events(str(run.pk), after="0-0", follow=True))
        return await _when_done(task, run.pk)


class RunEventsView(AsyncManagementView):
    permission_actions = {"get": "view"}

    @extend_schema(
        operation_id="workflows_runs_events",
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                str,
                location=OpenApiParameter.HEADER,
                description="Only the events after this one (the last `id:` received).",
            ),
            OpenApiParameter(
                "last_event_id", str, description="The same, for clients that cannot set it."
            ),
        ],
        responses={
            (200, "text/event-stream"): SSE_RESPONSE,
            410: OpenApiResponse(
                description="`events_expired`: the run ended over an hour ago and its events "
                "are no longer kept; read the run instead."
            ),
        },
    )
    async def get(self, request: HttpRequest, run_id: str) -> HttpResponseBase:
        """The run's events as they come, from the first or after `Last-Event-ID`; the
        stream ends at `workflow_finished` or `workflow_paused` (after a resume, reconnect
        with the paused event's id for the rest). A run that has ended gets what is kept."""
        after = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or "0-0"
        if not _ENTRY_ID.match(after):
            raise InvalidInput(f"Last-Event-ID: “{after}” is not an event id of this stream.")
        run = await database(selectors.access_run)(run_id)
        follow = run.status == WorkflowRun.Status.RUNNING
        if not follow and not await streams.exists(str(run.pk)):
            raise WeftError(
                "This run's events are no longer kept (an hour after its last one): read the "
                f"run instead, GET /api/workflows/runs/{run.pk}.",
                code="events_expired",
                status=410,
            )
        return _sse(run_events(str(run.pk), after=after, follow=follow))


class RunStopView(AsyncManagementView):
    permission_actions = {"post": "run"}

    @extend_schema(
        operation_id="workflows_runs_stop",
        request=None,
        responses={
            202: OpenApiResponse(s.AcceptedOut, description="Stopping: the run ends shortly."),
            200: OpenApiResponse(s.AcceptedOut, description="A paused run, stopped at once."),
            409: OpenApiResponse(description="`run_finished`: the run had already ended."),
        },
    )
    async def post(self, request: HttpRequest, run_id: str) -> HttpResponseBase:
        """Stop a running or paused run, wherever it runs. A run that has already ended
        answers 409 `run_finished` and keeps its status."""
        run = await database(selectors.access_run)(run_id)
        if run.status in WorkflowRun.FINISHED:
            raise Conflict(
                f"This run has already ended ({run.status}): there is nothing to stop.",
                code="run_finished",
            )
        await run_stop(tenant=require_tenant(request), run=run)
        paused = run.status == WorkflowRun.Status.PAUSED
        return JsonResponse(
            {
                "result": "success",
                "workflow_run_id": str(run.pk),
                "status": "stopped" if paused else "stopping",
            },
            status=200 if paused else 202,
        )


def _prepare_resume(tenant: Tenant, run_id: str, answer: dict[str, Any]):
    run = selectors.access_run(run_id)
    return run, run_resume_prepare(tenant=tenant, run=run, outputs=answer)


class RunResumeView(AsyncManagementView):
    permission_actions = {"post": "run"}

    @extend_schema(
        operation_id="workflows_runs_resume",
        request=s.ResumeIn,
        responses={
            202: OpenApiResponse(s.AcceptedOut, description="Resumed; follow its events."),
            200: OpenApiResponse(s.BlockingRunOut, description="`blocking`: the run's end."),
            409: OpenApiResponse(description="`conflict`: the run is not waiting for an answer."),
        },
    )
    async def post(self, request: HttpRequest, run_id: str) -> HttpResponseBase:
        """Answer a paused run's human-input form and resume it (detached, like a run)."""
        values = _body(request, s.ResumeIn)
        answer = dict(values["inputs"])
        if "action" in values:
            answer["action"] = values["action"]
        run, resume = await database(_prepare_resume)(require_tenant(request), run_id, answer)
        task = run_detached(run.pk, resume=resume)
        if values["response_mode"] == "blocking":
            return await _when_done(task, run.pk)
        return JsonResponse(
            {"result": "success", "workflow_run_id": str(run.pk), "status": "running"},
            status=202,
        )
