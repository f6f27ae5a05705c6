"""Base of Weft's middleware: runs natively on sync (WSGI, tests) and async (ASGI) requests,
so the async hot paths never fall back to a thread for it."""

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest


class HybridMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        """A response, or on the async path an awaitable of one; each middleware defines it."""
        raise NotImplementedError
