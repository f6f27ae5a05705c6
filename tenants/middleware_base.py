"""Base of Weft's middleware: runs natively on sync (WSGI, tests) and async (ASGI) requests,
so the async hot paths never fall back to a thread for it."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class HybridMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)
