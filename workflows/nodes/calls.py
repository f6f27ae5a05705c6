"""Calling a tenant's model from a node: the model a node names (or the tenant's default when
the tenant cannot call it), its completion parameters, streaming, and the tokens and price of
every call, summed for the node's result."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import F

from providers import services as models_runtime
from providers.models import Model, ModelKind
from providers.runtime.types import (
    ChatMessage,
    Finish,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from providers.selectors import default_model, model_callable
from tenants.context import tenant_context
from tenants.exceptions import WeftError
from tenants.models import Tenant

from ..dsl import ModelConfig
from ..engine.executor import NodeContext, NodeFailed, NodeResult
from ..services.dsl_io import provider_kind


def resolve_model(*, tenant: Tenant, kind: str, provider: str, name: str) -> tuple[Model, str]:
    """The model a node names (provider as Weft or Dify spells it), or, when the tenant cannot
    call that one, its default model of the kind; the second value says why it was replaced
    (empty when it was not)."""
    weft_kind = provider_kind(provider)
    with tenant_context(tenant):
        found = None
        if weft_kind and name:
            found = (
                Model.objects.filter(kind=kind, provider=weft_kind, name=name, enabled=True)
                .select_related("credential")
                # A tenant's own model wins over the global catalog entry of the same name.
                .order_by(F("tenant_id").asc(nulls_last=True))
                .first()
            )
        if found is not None and model_callable(found):
            return found, ""
        default = default_model(kind)
    return default, (
        f"{provider}/{name} is not set up in this tenant: its default {kind} model "
        f"{default.name} was used instead."
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, int | float) else value


def _stop(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str) and item)
    return ()


@dataclass(frozen=True)
class Reply:
    """One answer of the model: its whole text, the tools it called, why it stopped and
    what it used."""

    text: str
    finish_reason: str
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass
class NodeModel:
    """The model one node run calls, with the node's completion parameters; counts the tokens
    and price of all its calls (a repaired answer costs two)."""

    ctx: NodeContext
    model: Model
    config: ModelConfig
    replaced: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    price: Decimal = Decimal(0)
    finish_reason: str | None = None

    @classmethod
    async def open(cls, ctx: NodeContext, config: ModelConfig) -> NodeModel:
        """The model of `config` for the run's tenant."""
        tenant = ctx.run.tenant
        if tenant is None:
            raise NodeFailed("This run has no tenant to call a model for.", error_type="NoTenant")
        # Once per run and model: parallel branches naming the same model share one lookup
        # instead of queueing their queries on the one thread the ORM runs on.
        cache = ctx.run.services.setdefault("resolved_models", {})
        key = (ModelKind.CHAT, config.provider, config.name)
        if key not in cache:
            cache[key] = asyncio.ensure_future(
                sync_to_async(resolve_model)(
                    tenant=tenant, kind=ModelKind.CHAT, provider=config.provider, name=config.name
                )
            )
        model, replaced = await asyncio.shield(cache[key])
        return cls(ctx=ctx, model=model, config=config, replaced=replaced)

    @property
    def supports_json_schema(self) -> bool:
        return self.model.supports_json_schema

    async def ask(
        self,
        messages: Sequence[ChatMessage],
        *,
        response_format: ResponseFormat | None = None,
        tools: Sequence[Tool] = (),
        stop: Sequence[str] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> Reply:
        """The model's answer to `messages` (offering `tools`, stopping also at `stop`), each
        piece of text handed to `on_text` as it comes. A provider's refusal fails the node
        with the provider's error code as its type, so that the node's retries and error
        strategy apply."""
        params = self.config.completion_params
        max_tokens = _number(params.get("max_tokens"))
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage, reason = Usage(0, 0), "stop"
        run = self.ctx.run
        try:
            async for event in models_runtime.chat(
                tenant=run.tenant,
                messages=messages,
                model=self.model,
                tools=tools,
                response_format=response_format,
                stream=True,
                max_tokens=int(max_tokens) if max_tokens else None,
                temperature=_number(params.get("temperature")),
                stop=(*_stop(params.get("stop")), *stop),
                app_id=_uuid(run.app_id),
                workflow_run_id=_uuid(run.run_id),
            ):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    if on_text is not None and event.text:
                        on_text(event.text)
                elif isinstance(event, ToolCallDelta):
                    call = calls.setdefault(event.index, {"id": None, "name": "", "arguments": []})
                    call["id"] = call["id"] or event.id
                    call["name"] = call["name"] or event.name or ""
                    call["arguments"].append(event.arguments)
                elif isinstance(event, Finish):
                    usage, reason = event.usage, event.reason
        except WeftError as exc:
            raise NodeFailed(exc.message, error_type=exc.code) from exc
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        # The price as the usage event records it: Model.cost, at this model's prices.
        self.price += self.model.cost(usage.prompt_tokens, usage.completion_tokens)
        self.finish_reason = reason
        tool_calls = tuple(
            ToolCall(
                id=call["id"] or f"call_{index}",
                name=call["name"],
                arguments="".join(call["arguments"]),
            )
            for index, call in sorted(calls.items())
        )
        return Reply("".join(parts), reason, usage, tool_calls)

    def usage(self) -> dict[str, Any]:
        """Dify's `usage` output: tokens of every call so far and their price (text)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "total_price": str(self.price),
            "currency": self.model.currency,
        }

    def process_data(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        """What the node asked and of which model, for the run's log."""
        data: dict[str, Any] = {
            "model_mode": self.config.mode,
            "prompts": saved_prompts(messages),
            "model_provider": self.model.provider,
            "model_name": self.model.name,
            "usage": self.usage(),
            "finish_reason": self.finish_reason,
        }
        if self.replaced:
            data["model_replaced"] = {
                "provider": self.config.provider,
                "name": self.config.name,
                "reason": self.replaced,
            }
        return data

    def result(
        self,
        outputs: dict[str, Any],
        *,
        inputs: dict[str, Any] | None = None,
        process_data: Mapping[str, Any] | None = None,
        handle: str | None = None,
    ) -> NodeResult:
        """The node's result, carrying the tokens and price of its calls."""
        return NodeResult(
            outputs=outputs,
            inputs=inputs,
            process_data=dict(process_data) if process_data is not None else None,
            handle=handle,
            tokens=self.prompt_tokens + self.completion_tokens,
            price=self.price,
            currency=self.model.currency,
        )


def saved_prompts(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The prompts as Dify's run log shows them."""
    return [{"role": m.role, "text": m.content, "files": []} for m in messages]
