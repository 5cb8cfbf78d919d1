"""Cursor pagination. Folders use the Inbox's own keyset (``inbox.selectors.folder_page``, the same pages the list
shows, whose cost does not grow with depth); other lists use DRF's cursor pagination. A malformed cursor is 400."""

from urllib.parse import urlencode

from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from inbox.selectors import PAGE_SIZE, folder_page

MAX_PAGE_SIZE = 100


def page_envelope(results_serializer) -> serializers.Serializer:
    """The OpenAPI shape of a page: ``results`` and the ``next`` link (``null`` on the last page)."""
    child = getattr(results_serializer, "child", results_serializer)
    name = f"Paginated{child.__class__.__name__.removesuffix('Serializer')}List"
    return type(
        name,
        (serializers.Serializer,),
        {
            "next": serializers.URLField(
                allow_null=True, help_text="The next page, or null on the last one."
            ),
            "results": results_serializer,
        },
    )()


def folder_page_response(
    request, *, user, folder, filters, serialize, page_size: int, cursor: str
) -> Response:
    try:
        page = folder_page(user=user, folder=folder, filters=filters, cursor=cursor, limit=page_size)
    except (ValueError, OverflowError, OSError):
        raise ValidationError(
            {"cursor": ["This cursor is not valid; start again from the first page."]}
        ) from None
    next_url = None
    if page.next_cursor:
        params = request.query_params.copy()
        params["cursor"] = page.next_cursor
        next_url = (
            request.build_absolute_uri(request.path) + "?" + urlencode(list(params.lists()), doseq=True)
        )
    return Response({"next": next_url, "results": serialize(page.rows)})


class NamedCursorPagination(CursorPagination):
    """Newest-stable cursor over a queryset; ``page_size`` 1–100 (default 50)."""

    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = ("last_name", "first_name", "pk")

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {"cursor": ["This cursor is not valid; start again from the first page."]}
            ) from None

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "results": data})
