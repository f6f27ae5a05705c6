"""The model runtime as the rest of Weft calls it: pick the model and credentials, call with
retries, circuit breaking, load balancing and fallbacks, and meter every call.

    async for event in chat(tenant=tenant, messages=[...], stream=True): ...
    vectors = (await embed(tenant=tenant, texts=[...])).vectors
    ranking = (await rerank(tenant=tenant, query="...", documents=[...])).ranking
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing import quota
from billing.models import Metric
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, WeftError
from tenants.models import Tenant

from . import catalog
from .http import guarded_client, shared_client
from .models import (
    DefaultModel,
    Fallback,
    Model,
    ModelKind,
    ProviderCredential,
    ProviderKind,
    UsageEvent,
)
from .runtime import offline, resilience
from .runtime.anthropic import Anthropic
from .runtime.openai import OpenAICompatible
from .runtime.types import (
    ChatEvent,
    ChatMessage,
    Embeddings,
    Finish,
    ModelNotFound,
    RerankResult,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCallDelta,
    Usage,
)
from .selectors import default_model


@dataclass(frozen=True)
class Route:
    """A model on one credential (none for the built-in models): one target of a call."""

    model: Model
    credential: ProviderCredential | None
    secret: str

    @property
    def key(self) -> str:
        return (
            f"credential:{self.credential.pk}" if self.credential else f"offline:{self.model.name}"
        )

    def build(self, client):
        """The implementation object for this route, on `client`."""
        model = self.model
        if model.provider == ProviderKind.OFFLINE:
            if model.kind == ModelKind.EMBEDDING:
                return offline.HashingEmbedder(dimensions=model.dimensions or 512)
            if model.kind == ModelKind.RERANK:
                return offline.LexicalReranker()
            return offline.ExtractiveChat()
        credential = self.credential
        assert credential is not None  # noqa: S101 - routes of remote models carry one
        if model.provider == ProviderKind.ANTHROPIC:
            return Anthropic(
                client=client,
                base_url=credential.effective_base_url,
                api_key=self.secret,
                model=model.name,
                max_output_tokens=model.max_output_tokens,
                options=credential.options,
            )
        return OpenAICompatible(
            client=client,
            base_url=credential.effective_base_url,
            api_key=self.secret,
            model=model.name,
            options=credential.options,
            azure=model.provider == ProviderKind.AZURE_OPENAI,
            dimensions=model.dimensions,
        )


def _find_model(kind: str, model: str | int | Model | None) -> Model:
    if isinstance(model, Model):
        return model
    if model is None:
        return default_model(kind)
    rows = Model.objects.filter(kind=kind, enabled=True).select_related("credential")
    found = rows.filter(pk=model).first() if isinstance(model, int) else None
    if found is None and isinstance(model, str):
        # A tenant's own model wins over the global catalog entry of the same name.
        found = rows.filter(name=model).order_by(F("tenant_id").asc(nulls_last=True)).first()
    if found is None:
        raise ModelNotFound(f"No {kind} model “{model}” is available to this tenant.")
    return found


def _routes_for(model: Model) -> list[Route]:
    if model.provider == ProviderKind.OFFLINE:
        return [Route(model=model, credential=None, secret="")]
    if model.credential_id is not None:
        credentials = [model.credential] if model.credential and model.credential.enabled else []
    else:
        credentials = list(ProviderCredential.objects.filter(kind=model.provider, enabled=True))
    ordered = resilience.weighted_order(credentials, lambda c: c.weight)
    return [Route(model=model, credential=c, secret=c.secret) for c in ordered if c is not None]


def plan(*, tenant: Tenant, kind: str, model: str | int | Model | None) -> list[Route]:
    """The routes a call tries, in order: the model's credentials (load-balanced), then the
    fallbacks of the tenant's default for this kind."""
    # A call is refused once the period's tokens are spent (unless overage is billed).
    quota.check(tenant, Metric.TOKENS)
    with tenant_context(tenant):
        primary = _find_model(kind, model)
        routes = _routes_for(primary)
        default = DefaultModel.objects.filter(kind=kind, model=primary).first()
        if default is not None:
            for fallback in Fallback.objects.filter(default=default).select_related(
                "model__credential"
            ):
                routes += _routes_for(fallback.model)
    if not routes:
        raise ModelNotFound(
            f"{primary} has no enabled credential: add a {primary.get_provider_display()} "
            "credential in the console."
        )
    return routes


async def _record(
    *,
    tenant: Tenant,
    route: Route | None,
    operation: str,
    usage: Usage | None,
    started: float,
    first_token: float | None,
    status: str,
    error_code: str = "",
    context: dict[str, UUID | None],
) -> None:
    model = route.model if route else None
    event = UsageEvent(
        tenant=tenant,
        operation=operation,
        provider=model.provider if model else "",
        model_name=model.name if model else "",
        credential=route.credential if route else None,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        total_tokens=usage.total_tokens if usage else 0,
        tokens_estimated=usage.estimated if usage else False,
        cost=model.cost(usage.prompt_tokens, usage.completion_tokens) if model and usage else 0,
        currency=model.currency if model else "USD",
        latency_ms=round((time.monotonic() - started) * 1000),
        time_to_first_token_ms=round((first_token - started) * 1000) if first_token else None,
        status=status,
        error_code=error_code,
        **context,
    )
    await sync_to_async(_save_usage)(event)


def _save_usage(event: UsageEvent) -> None:
    """Keep the call's record and count its tokens against the plan (the call has happened:
    counted whatever the limit, which the next call's check enforces)."""
    event.save()
    if event.total_tokens:
        quota.consume(event.tenant, Metric.TOKENS, event.total_tokens, enforce=False, record=False)


async def chat(
    *,
    tenant: Tenant,
    messages: Sequence[ChatMessage],
    model: str | int | Model | None = None,
    tools: Sequence[Tool] = (),
    response_format: ResponseFormat | None = None,
    stream: bool = True,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: Sequence[str] = (),
    app_id: UUID | None = None,
    workflow_run_id: UUID | None = None,
    message_id: UUID | None = None,
) -> AsyncIterator[ChatEvent]:
    """Chat with the tenant's model (its default when none is named): deltas, then Finish.

    Retries and fallbacks happen before the first event; once text flows, a failure ends
    the stream with the error. Every call records one UsageEvent when it ends."""
    if not messages:
        raise InvalidInput("A chat needs at least one message.")
    routes = await sync_to_async(plan)(tenant=tenant, kind=ModelKind.CHAT, model=model)
    context = {"app_id": app_id, "workflow_run_id": workflow_run_id, "message_id": message_id}
    started = time.monotonic()
    first_token = None
    usage = None
    route: Route | None = None
    status, error_code = UsageEvent.Status.OK, ""
    client = shared_client()
    stream_in_flight = None

    async def open_stream(candidate: Route):
        events = candidate.build(client).chat(
            messages,
            tools=tools,
            response_format=response_format,
            stream=stream,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
        )
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        return events, first

    try:
        served, (stream_in_flight, first) = await resilience.run(
            [resilience.Target(r.key, r) for r in routes], open_stream
        )
        route = served
        async for event in _prepend(first, stream_in_flight):
            if first_token is None and isinstance(event, TextDelta | ToolCallDelta):
                first_token = time.monotonic()
            if isinstance(event, Finish):
                usage = event.usage
            yield event
    except WeftError as exc:
        status, error_code = UsageEvent.Status.ERROR, exc.code
        raise
    except (asyncio.CancelledError, GeneratorExit):
        if usage is None:  # a caller leaving after the Finish event has had it all
            status, error_code = UsageEvent.Status.CANCELLED, "cancelled"
        raise
    except Exception:
        status, error_code = UsageEvent.Status.ERROR, "internal_error"
        raise
    finally:
        if stream_in_flight is not None:
            await stream_in_flight.aclose()
        await _record(
            tenant=tenant,
            route=route,
            operation=ModelKind.CHAT,
            usage=usage,
            started=started,
            first_token=first_token,
            status=status,
            error_code=error_code,
            context=context,
        )


async def _prepend(first: ChatEvent, rest: AsyncIterator[ChatEvent]) -> AsyncIterator[ChatEvent]:
    yield first
    async for event in rest:
        yield event


async def chat_text(**kwargs: Any) -> tuple[str, Usage]:
    """A whole chat answer as text (blocking callers, the console's Test button)."""
    parts: list[str] = []
    usage = Usage(0, 0)
    async for event in chat(**kwargs):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Finish):
            usage = event.usage
    return "".join(parts), usage


async def embed(
    *,
    tenant: Tenant,
    texts: Sequence[str],
    model: str | int | Model | None = None,
    app_id: UUID | None = None,
    workflow_run_id: UUID | None = None,
) -> Embeddings:
    """Vectors for the texts, in order, from the tenant's embedding model."""
    routes = await sync_to_async(plan)(tenant=tenant, kind=ModelKind.EMBEDDING, model=model)
    return await _metered(
        tenant,
        routes,
        ModelKind.EMBEDDING,
        lambda impl: impl.embed(list(texts)),
        {"app_id": app_id, "workflow_run_id": workflow_run_id, "message_id": None},
    )


async def rerank(
    *,
    tenant: Tenant,
    query: str,
    documents: Sequence[str],
    top_n: int | None = None,
    model: str | int | Model | None = None,
    app_id: UUID | None = None,
    workflow_run_id: UUID | None = None,
) -> RerankResult:
    """Documents ordered by relevance to the query, best first."""
    routes = await sync_to_async(plan)(tenant=tenant, kind=ModelKind.RERANK, model=model)
    return await _metered(
        tenant,
        routes,
        ModelKind.RERANK,
        lambda impl: impl.rerank(query, list(documents), top_n=top_n),
        {"app_id": app_id, "workflow_run_id": workflow_run_id, "message_id": None},
    )


async def _metered(tenant, routes, operation, call, context):
    started = time.monotonic()
    route = None
    client = shared_client()
    try:
        route, result = await resilience.run(
            [resilience.Target(r.key, r) for r in routes],
            lambda candidate: call(candidate.build(client)),
        )
    except WeftError as exc:
        await _record(
            tenant=tenant,
            route=route or routes[0],
            operation=operation,
            usage=None,
            started=started,
            first_token=None,
            status=UsageEvent.Status.ERROR,
            error_code=exc.code,
            context=context,
        )
        raise
    await _record(
        tenant=tenant,
        route=route,
        operation=operation,
        usage=result.usage,
        started=started,
        first_token=None,
        status=UsageEvent.Status.OK,
        context=context,
    )
    return result


# --- Credentials ---------------------------------------------------------------------------


def credential_check(*, credential: ProviderCredential) -> tuple[bool, str]:
    """Make a real, tiny request with the credential and record the outcome on it.

    Returns (worked, what the provider said): its answer, or its own error message."""
    from asgiref.sync import async_to_sync

    if credential.kind == ProviderKind.ANTHROPIC:
        model_name = credential.options.get("test_model") or catalog.ANTHROPIC_TEST_MODEL
    else:
        first_model = credential.served_models.filter(kind=ModelKind.CHAT).first()
        model_name = (
            credential.options.get("test_model")
            or (first_model.name if first_model else None)
            or catalog.OPENAI_TEST_MODEL
        )
    secret = credential.secret

    async def probe() -> str:
        async with guarded_client() as client:
            if credential.kind == ProviderKind.ANTHROPIC:
                impl: Any = Anthropic(
                    client=client,
                    base_url=credential.effective_base_url,
                    api_key=secret,
                    model=model_name,
                    max_output_tokens=16,
                    options=credential.options,
                )
            else:
                impl = OpenAICompatible(
                    client=client,
                    base_url=credential.effective_base_url,
                    api_key=secret,
                    model=model_name,
                    options=credential.options,
                    azure=credential.kind == ProviderKind.AZURE_OPENAI,
                )
            parts = []
            async for event in impl.chat(
                [ChatMessage(role="user", content="Reply with the single word: OK")],
                stream=False,
                max_tokens=8,
            ):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
            return f"{model_name} answered: {''.join(parts).strip()[:200] or '(empty)'}"

    try:
        said, worked = async_to_sync(probe)(), True
    except WeftError as exc:
        said, worked = exc.message, False
    with transaction.atomic():
        credential.status = (
            ProviderCredential.Status.OK if worked else ProviderCredential.Status.FAILED
        )
        credential.last_checked_at = timezone.now()
        credential.last_error = "" if worked else said
        credential.save(update_fields=["status", "last_checked_at", "last_error", "updated_at"])
    return worked, said
