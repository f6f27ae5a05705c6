"""Data of the http-request node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field

from .base import DslModel, NodeData, VariableRef
from .selectors import SelectorRef, ref, refs_in_template


class HttpAuthorizationConfig(DslModel):
    """How an API key is sent."""

    type: Literal["basic", "bearer", "custom"] | None = None
    api_key: str | None = None
    header: str | None = None


class HttpAuthorization(DslModel):
    """No authorization, or an API key."""

    type: Literal["no-auth", "api-key"] = "no-auth"
    config: HttpAuthorizationConfig | None = None


class HttpBodyItem(DslModel):
    """One key-value (or file) of a form body, or the single text of a raw/json body."""

    id: str | None = None
    key: str = ""
    type: Literal["text", "file"] = "text"
    value: str = ""
    file: list[str] | None = None


class HttpBody(DslModel):
    """The request body; `data` is a list since Dify 0.1.3 and a plain string before."""

    type: Literal["none", "form-data", "x-www-form-urlencoded", "raw-text", "json", "binary"] = (
        "none"
    )
    data: list[HttpBodyItem] | str | None = None


class HttpTimeout(DslModel):
    """Timeouts in seconds; Dify's editor writes the max_* names, its engine reads both."""

    connect: int | None = None
    read: int | None = None
    write: int | None = None
    max_connect_timeout: int | None = None
    max_read_timeout: int | None = None
    max_write_timeout: int | None = None


HttpMethod = Literal[
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "head",
    "options",
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "HEAD",
    "OPTIONS",
]


class HttpRequestData(NodeData):
    """An HTTP call; headers and params are `key:value` lines and may hold references."""

    TYPES: ClassVar[tuple[str, ...]] = ("http-request",)
    type: Literal["http-request"] = "http-request"
    method: HttpMethod = "get"
    url: str = ""
    headers: str = ""
    params: str = ""
    body: HttpBody | None = None
    authorization: HttpAuthorization = Field(default_factory=HttpAuthorization)
    timeout: HttpTimeout | None = None
    ssl_verify: bool | None = None
    variables: list[VariableRef] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """References in the URL, headers, params, body and API key."""
        yield from refs_in_template("url", self.url)
        yield from refs_in_template("headers", self.headers)
        yield from refs_in_template("params", self.params)
        if self.authorization.config is not None:
            yield from refs_in_template(
                "authorization.config.api_key", self.authorization.config.api_key
            )
        if self.body is None:
            return
        if isinstance(self.body.data, str):
            yield from refs_in_template("body.data", self.body.data)
            return
        for index, item in enumerate(self.body.data or []):
            field = f"body.data[{index}]"
            yield from refs_in_template(f"{field}.key", item.key)
            yield from refs_in_template(f"{field}.value", item.value)
            yield from ref(f"{field}.file", item.file)
