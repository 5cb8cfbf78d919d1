"""Django's ASGI handler, running each HTTP request's middleware and view in one worker thread.

Every view and middleware here is synchronous. Django's stock ASGI handler builds an async middleware chain around
them: the request crosses into a thread for the middleware, back to the event loop for the innermost handler and into
a thread again for the view, and each request starts a thread of its own. Here the whole synchronous chain runs in
one call on the event loop's thread pool (bounded, threads reused), as it does under WSGI.
"""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=False)(request)
