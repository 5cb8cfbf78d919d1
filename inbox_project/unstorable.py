"""Text the database cannot store, the one place the rule lives: a NUL character (PostgreSQL text and jsonb cannot
hold one) or a lone UTF-16 surrogate (``\\ud800``–``\\udfff``: JSON escapes ``json.loads`` accepts, but no UTF-8
encoder, and so no database, will take). Input holding either is refused at the door, naming the field, before any
view or consumer changes anything:

- query-string and form parameters (names and values) and uploaded file names: a 400 (problem details on the API);
- JSON request bodies (the Inbox API and any page endpoint that posts JSON), keys and string values at any depth:
  a 400 ``application/problem+json`` naming the field;
- WebSocket messages: the consumers call ``find_unstorable`` on what they parsed (``careportal/consumers*.py``).

Header values that are stored (the User-Agent in audit events) are cleaned rather than refused (``storable``): a
client does not choose to send them. Without this a search for ``%00`` reached the ORM and answered 500.

Provider webhooks (``/hooks/``) are not refused here: an inbound item is kept whatever bytes it holds, and ingestion
makes its text storable itself (``inbox.ingest.common.safe_text``)."""

import json
import re

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse

NUL_MESSAGE = "Text cannot contain NUL (\\0) characters; remove them and try again."
SURROGATE_MESSAGE = "Text cannot contain a lone surrogate (an unpaired \\ud800-\\udfff escape); send valid Unicode and try again."
MESSAGE = NUL_MESSAGE  # the usual one
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def reason(text: str) -> str | None:
    """Why ``text`` cannot be stored, fit to show; None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def storable(text: str) -> str:
    """``text`` made storable: NULs dropped, lone surrogates replaced by U+FFFD (for values nobody typed)."""
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text or "")


def shown(name: str) -> str:
    """A field name fit to show back, its unstorable characters written as escapes."""
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", name)


def find_unstorable(value, field: str = "") -> tuple[str, str] | None:
    """The first unstorable text in parsed JSON (keys and strings at any depth) as ``(field, reason)``: the field
    is a path such as ``recipients[0].name`` (``""`` for the document itself). None when everything can be stored."""
    if isinstance(value, str):
        why = reason(value)
        return (field, why) if why else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{field}.{shown(str(key))}" if field else shown(str(key))
            why = reason(key) if isinstance(key, str) else None
            if why:
                return path, why
            found = find_unstorable(item, path)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_unstorable(item, f"{field}[{index}]")
            if found:
                return found
    return None


def find_in_params(params) -> tuple[str, str] | None:
    """The first unstorable parameter name or value of a QueryDict, as ``(field, reason)``."""
    for key in params:
        why = reason(key) or next(filter(None, map(reason, params.getlist(key))), None)
        if why:
            return shown(key), why
    return None


def find_in_files(files) -> tuple[str, str] | None:
    """An uploaded file whose name or content type (as the browser sent them; an attachment keeps both) cannot be
    stored. Django already drops unprintable characters from the name; this holds whatever upload handler runs."""
    for key in files:
        for upload in files.getlist(key):
            why = (
                reason(key) or reason(upload.name or "") or reason(getattr(upload, "content_type", "") or "")
            )
            if why:
                return shown(key), why
    return None


def find_in_json_body(request) -> tuple[str, str] | None:
    try:
        body = request.body
    except RequestDataTooBig:  # the view refuses it in its own words
        return None
    if not body:
        return None
    try:
        document = json.loads(body)
    except ValueError:  # not JSON: the view's parser answers that
        return None
    return find_unstorable(document)


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


class RefuseUnstorableInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/hooks/"):
            return self.get_response(request)
        found = find_in_params(request.GET)
        as_json = False
        if found is None and request.method in BODY_METHODS:
            if request.content_type in FORM_TYPES and request.method == "POST":
                found = find_in_params(request.POST) or find_in_files(request.FILES)
            elif is_json(request.content_type):
                found, as_json = find_in_json_body(request), True
        if found is not None:
            return refusal(request, *found, as_json=as_json)
        return self.get_response(request)


def refusal(request, field: str = "", why: str = NUL_MESSAGE, *, as_json: bool = False) -> HttpResponse:
    """The 400: problem details (RFC 9457) on the API and for a JSON body, as the API's own errors are; plain text
    for a page's form or query string."""
    if as_json or request.path.startswith("/api/"):
        from inbox.api.problems import problem

        label = field or "body"
        detail = f"{why} (field: {label})" if field else why
        body = problem(400, detail, errors={label: [why]})
        return HttpResponse(json.dumps(body), status=400, content_type="application/problem+json")
    detail = f"{why} (field: {field})" if field else why
    return HttpResponse(detail, status=400, content_type="text/plain; charset=utf-8")
