"""Input the database cannot store, refused at the door with a clear 400: a NUL character (PostgreSQL text cannot
hold one) in any query-string or form parameter, name or value. Without this a search for ``%00`` reached the ORM and
answered 500 on every page that searches.

Provider webhooks (``/hooks/``) are not refused here: an inbound item is kept whatever bytes it holds, and ingestion
makes its text storable itself (``inbox.ingest.common.safe_text``)."""

import json

from django.http import HttpResponse

MESSAGE = "Text cannot contain NUL (\\0) characters; remove them and try again."
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def has_unstorable(params) -> bool:
    return any("\x00" in key or any("\x00" in value for value in params.getlist(key)) for key in params)


class RefuseUnstorableInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/hooks/") and (
            has_unstorable(request.GET)
            or (
                request.content_type in FORM_TYPES
                and request.method == "POST"
                and has_unstorable(request.POST)
            )
        ):
            return refusal(request)
        return self.get_response(request)


def refusal(request) -> HttpResponse:
    if request.path.startswith("/api/"):  # the Inbox API answers problem details (RFC 9457), as its views do
        body = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": MESSAGE}
        return HttpResponse(json.dumps(body), status=400, content_type="application/problem+json")
    return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")
