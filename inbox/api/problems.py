"""Errors as RFC 9457 problem details (``application/problem+json``): ``type``, ``title``, ``status``, ``detail``,
and ``errors`` (field → messages) for invalid input. Inbox domain errors (a refused reply, an assignee without
access) are 422, as the page answers them; an id the caller may not see is 404, exactly like one that does not
exist, and says nothing about the patient."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.views import exception_handler

from careportal.models import Contact, Patient
from designer.models import MessageTemplate
from inbox.errors import FolderNotAllowed, InboxError
from inbox.models import Attachment, Communication

PROBLEM_TYPE_BASE = "https://care-inbox.invalid/problems/"
NOT_FOUND_ERRORS = (
    Http404,
    Communication.DoesNotExist,
    Attachment.DoesNotExist,
    Patient.DoesNotExist,
    Contact.DoesNotExist,
    MessageTemplate.DoesNotExist,
    FolderNotAllowed,
)
TITLES = {
    400: ("invalid-request", "Your request is not valid."),
    401: ("not-authenticated", "Authentication is required."),
    403: ("forbidden", "You may not do this."),
    404: ("not-found", "Not found."),
    405: ("method-not-allowed", "Method not allowed."),
    406: ("not-acceptable", "Not acceptable."),
    412: ("precondition-failed", "The communication changed since the version you named."),
    415: ("unsupported-media-type", "Unsupported media type."),
    422: ("unprocessable", "The request was understood but refused."),
    429: ("throttled", "Too many requests."),
}


class ProblemJSONRenderer(JSONRenderer):
    media_type = "application/problem+json"
    format = "problem+json"


def problem(status_code: int, detail: str, **extra) -> dict:
    slug, title = TITLES.get(status_code, ("error", "Error."))
    return {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status_code,
        "detail": detail,
        **extra,
    }


def _messages(detail) -> list[str]:
    """Every message in a DRF error detail, however nested (a list field's errors come keyed by item index)."""
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _messages(value)]
    if isinstance(detail, list | tuple):
        return [m for value in detail for m in _messages(value)]
    return [str(detail)]


def _flatten(detail) -> dict:
    """DRF's nested error detail as ``{"field": ["message", …]}``."""
    if isinstance(detail, dict):
        return {key: _messages(value) for key, value in detail.items()}
    return {"non_field_errors": _messages(detail)}


class PreconditionFailed(exceptions.APIException):
    """``If-Match`` named a version of the communication that is no longer the current one: nothing was done."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The communication changed since the version you named (If-Match). Nothing was sent."


def problem_exception_handler(exc, context):
    if isinstance(exc, NOT_FOUND_ERRORS):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, InboxError):
        response = exception_handler(exceptions.APIException(), context)
        response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
        response.data = problem(422, str(exc))
        return _as_problem(response, context)
    response = exception_handler(exc, context)
    if response is None:
        return None  # a server error: Django's 500 handling (logged), never details
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.values()), ["Invalid input."])[0]
        response.data = problem(400, first, errors=errors)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = problem(response.status_code, str(detail))
    return _as_problem(response, context)


def _as_problem(response, context):
    request = context.get("request")
    if request is not None:
        request.accepted_renderer = ProblemJSONRenderer()
        request.accepted_media_type = ProblemJSONRenderer.media_type
    response.content_type = ProblemJSONRenderer.media_type
    return response
