"""Inbox API views: thin — parse input, call the selector or service the Inbox page calls, serialize.

Access: ``HoldsInboxApi`` (Inbox API policy, else 403); what the caller sees is the one access rule, through
``inbox.selectors`` / ``careportal.access``; an id the caller may not see is 404 like one that does not exist.
Reads of a communication and every change are audited exactly as on the page (``record_view``, the services,
``record_download`` through the page's own download view).
"""

import hashlib

from django.http import HttpResponseNotModified
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from careportal.access import patients_visible_to
from careportal.forms import AssignForm, LinkForm
from careportal.selectors import search_visible_patients, visible_candidates
from careportal.views.inbox import _template_channel, attachment_download
from careportal.views.inbox_state import folder_or_404
from designer.placeholders import fill
from designer.selectors import published_templates
from inbox import selectors
from inbox.errors import ConversationChanged
from inbox.folders import FOLDERS_BY_INBOX, Folder, InboxKind
from inbox.selectors import (
    ALL_FILTER_CHANNELS,
    ALL_STATUSES,
    FolderFilters,
    active_sending_lines,
    assignee_candidates,
    communication_for,
    conversation_messages,
    folder_counts,
    inboxes_for,
    with_candidate_counts,
)
from inbox.services import ReplyContent, Seen, assign, link_to_patient, record_view, send_reply, set_status

from . import serializers as s
from .pagination import NamedCursorPagination, folder_page_response, page_envelope
from .problems import PreconditionFailed, problem

# --- Documentation helpers --------------------------------------------------------------------------------------

PROBLEM_MEDIA_TYPE = "application/problem+json"


def _problem(description: str, status_code: int, detail: str, **extra) -> OpenApiResponse:
    """A documented problem response with an example built by the same ``problem()`` the handler uses."""
    example = problem(status_code, detail, **extra)
    slug = example["type"].rsplit("/", 1)[-1]
    return OpenApiResponse(
        response=s.ProblemSerializer,
        description=f"{description} (application/problem+json, RFC 9457)",
        examples=[OpenApiExample(slug, value=example, response_only=True, status_codes=[str(status_code)])],
    )


COMMON_ERRORS = {
    (401, PROBLEM_MEDIA_TYPE): _problem(
        "Authentication is required.", 401, "The token is not valid or has been revoked."
    ),
    (403, PROBLEM_MEDIA_TYPE): _problem(
        "You may not do this.", 403, "Your role does not hold the Inbox API policy."
    ),
    (429, PROBLEM_MEDIA_TYPE): _problem(
        "Too many requests.", 429, "Request was throttled. Expected available in 12 seconds."
    ),
}
NOT_FOUND = {(404, PROBLEM_MEDIA_TYPE): _problem("Not found.", 404, "Not found.")}
BAD_REQUEST = {
    (400, PROBLEM_MEDIA_TYPE): _problem(
        "Your request is not valid.",
        400,
        '"maybe" is not a valid choice.',
        errors={"status": ['"maybe" is not a valid choice.']},
    )
}
REFUSED = {
    (422, PROBLEM_MEDIA_TYPE): _problem(
        "The request was understood but refused.",
        422,
        "Link this communication to a patient before replying.",
    )
}
NOT_MODIFIED = {
    304: OpenApiResponse(description="Not modified: the ETag given in If-None-Match still matches.")
}
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="An ETag from an earlier answer: 304 with no body when nothing changed.",
)  # fmt: skip
COMMUNICATION_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="Communication id."
)

EXAMPLE_PERSON = {"id": 7, "name": "Nora Nurse"}
EXAMPLE_ROW = {
    "id": 42, "url": "/api/v1/communications/42/", "channel": "sms", "status": "open", "is_unrecognized": False,
    "subject": "", "counterpart": "+15550102030", "patient": {"id": 12, "name": "Maria Lopez"}, "contact": None,
    "sending_line": {"id": 1, "name": "Main line", "number": "+15550100000", "label": "Main line"},
    "assignee": EXAMPLE_PERSON, "last_message_at": "2026-11-25T14:03:00Z",
    "last_message_preview": "Can I take it with food?", "last_message_direction": "in", "candidate_count": 0,
}  # fmt: skip
EXAMPLE_MESSAGE = {
    "id": 301, "direction": "in", "author": None, "sender_name": "", "sender_address": "+15550102030",
    "recipient_address": "+15550100000", "subject": "", "body_text": "Can I take it with food?", "body_html": "",
    "is_secure": False, "is_internal_note": False, "is_auto_reply": False, "delivery_status": "received",
    "created_at": "2026-11-25T14:03:00Z", "sent_at": None,
    "attachments": [{"id": 5, "filename": "photo.jpg", "content_type": "image/jpeg", "size": 48213,
                     "download_url": "/api/v1/communications/42/attachments/5/"}],
}  # fmt: skip
EXAMPLE_DETAIL = {
    **EXAMPLE_ROW, "opened_at": "2026-11-25T14:03:00Z", "closed_at": None, "created_at": "2026-11-20T09:00:00Z",
    "messages": [EXAMPLE_MESSAGE], "candidates": [],
}  # fmt: skip


# --- Base view ------------------------------------------------------------------------------------------------


def etag_of(content: bytes) -> str:
    """A strong ETag of a JSON body (the API renders JSON only, so the same data gives the same tag)."""
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


class InboxApiView(APIView):
    # Reads carry a strong ETag of their body; If-None-Match with it answers 304 without a body.

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if (
            request.method in ("GET", "HEAD")
            and response.status_code == 200
            and isinstance(response, Response)
        ):
            response.render()
            etag = etag_of(response.content)
            response["ETag"] = etag
            response["Cache-Control"] = "private, no-cache"
            patch_vary_headers(response, ("Authorization", "Cookie"))
            wanted = [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]
            if etag in wanted or f"W/{etag}" in wanted:
                not_modified = HttpResponseNotModified()
                for header in ("ETag", "Cache-Control", "Vary"):
                    not_modified[header] = response[header]
                return not_modified
        return response


def _validated(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _query(request, serializer_class):
    """Query parameters, with the repeatable list parameters as lists. A list parameter given only as an empty value
    (``status=``, what the Inbox page's filter form sends with every chip of a group off) means none chosen: ``None``
    here; left out, it is ``[]`` (all)."""
    data = {key: request.query_params.get(key) for key in request.query_params}
    nothing_chosen = []
    for key in ("status", "channel"):
        if key in request.query_params:
            data[key] = [value for value in request.query_params.getlist(key) if value != ""]
            if not data[key]:
                nothing_chosen.append(key)
    validated = _validated(serializer_class, data)
    for key in nothing_chosen:
        validated[key] = None
    return validated


def _chosen(values: list | None, every: frozenset[str]) -> frozenset[str]:
    return frozenset() if values is None else frozenset(values) or every


def _filters(data) -> FolderFilters:
    return FolderFilters(
        statuses=_chosen(data["status"], ALL_STATUSES),
        channels=_chosen(data["channel"], ALL_FILTER_CHANNELS),
        unassigned_only=data["unassigned"],
        query=data["q"],
    )


def _form_errors(form) -> ValidationError:
    return ValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})


def _communication(request, pk):
    return communication_for(user=request.user, pk=pk)


def _detail(request, communication, *, audit_view: bool) -> dict:
    """One communication with its messages and attachments (and visible candidates when Unrecognized)."""
    if audit_view:
        record_view(user=request.user, communication=communication, request=request._request)
    with_candidate_counts([communication])
    candidates = visible_candidates(request.user, communication) if communication.is_unrecognized else []
    context = {"messages": list(conversation_messages(communication)), "candidates": candidates}
    return s.CommunicationDetailSerializer(communication, context=context).data


# --- Inboxes and folders ----------------------------------------------------------------------------------


FILTER_PARAMETERS = [
    OpenApiParameter("status", OpenApiTypes.STR, many=True, enum=sorted(ALL_STATUSES), explode=True,
                     description="open, closed (repeat for both; left out means both; an empty value alone, "
                                 "`status=`, means none: no rows, counts 0 — as the Inbox page with both chips off)."),
    OpenApiParameter("channel", OpenApiTypes.STR, many=True, enum=sorted(ALL_FILTER_CHANNELS), explode=True,
                     description="sms, email (includes Secure Email), chat (left out means all; an empty value "
                                 "alone, `channel=`, means none)."),
    OpenApiParameter("unassigned", OpenApiTypes.BOOL, description="Only unassigned (shared folders)."),
    OpenApiParameter("q", OpenApiTypes.STR, description="Search: phone, email, patient or contact name, message text."),
]  # fmt: skip


class InboxesView(InboxApiView):
    @extend_schema(
        operation_id="inboxes_list",
        summary="Inboxes and folders with counts",
        description="The inboxes your role offers and their folders, each counted with the same filters the folder "
        "list takes — the counts the Inbox page shows.",
        parameters=[*FILTER_PARAMETERS, IF_NONE_MATCH],
        responses={200: s.InboxSerializer(many=True), **BAD_REQUEST, **COMMON_ERRORS, **NOT_MODIFIED},
        examples=[OpenApiExample("My Inbox", response_only=True, value=[{
            "inbox": "my", "name": "My Inbox", "folders": [{
                "folder": "my/assigned", "name": "Assigned to me", "count": 3, "count_capped": False,
                "communications_url": "/api/v1/folders/my/assigned/communications/"}]}])],
    )  # fmt: skip
    def get(self, request):
        filters = _filters(_query(request, s.FolderFilterSerializer))
        counts = folder_counts(user=request.user, filters=filters)
        data = []
        for kind in inboxes_for(request.user):
            folders = [
                {
                    "folder": folder.value,
                    "name": folder.label,
                    "count": min(counts[folder], selectors.COUNT_CAP),
                    "count_capped": counts[folder] > selectors.COUNT_CAP,
                    "communications_url": reverse("api:folder", args=[folder.inbox, folder.slug]),
                }
                for folder in FOLDERS_BY_INBOX[kind]
            ]
            data.append({"inbox": kind.value, "name": kind.label, "folders": folders})
        return Response(data)


class FolderCommunicationsView(InboxApiView):
    @extend_schema(
        operation_id="folder_communications_list",
        summary="Communications in a folder",
        description="Newest first, with the page's filters and search; cursor-paginated (follow `next`). A folder "
        "your role does not offer is 404.",
        parameters=[
            OpenApiParameter("inbox", OpenApiTypes.STR, OpenApiParameter.PATH, enum=InboxKind.values),
            OpenApiParameter("folder", OpenApiTypes.STR, OpenApiParameter.PATH,
                             enum=sorted({f.slug for f in Folder})),
            *FILTER_PARAMETERS,
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's `next`."),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="1–100, default 50."),
            IF_NONE_MATCH,
        ],
        responses={200: page_envelope(s.CommunicationSerializer(many=True)), **BAD_REQUEST, **COMMON_ERRORS,
                   **NOT_FOUND, **NOT_MODIFIED},
        examples=[OpenApiExample("A page", response_only=True, value={
            "next": "https://care.example/api/v1/folders/my/assigned/communications/?cursor=1764079380.000000_42",
            "results": [EXAMPLE_ROW]})],
    )  # fmt: skip
    def get(self, request, inbox: str, folder: str):
        current = folder_or_404(request.user, inbox, folder)
        data = _query(request, s.FolderPageQuerySerializer)

        def serialize(rows):
            with_candidate_counts(rows)
            return s.CommunicationSerializer(rows, many=True).data

        return folder_page_response(
            request, user=request.user, folder=current, filters=_filters(data), serialize=serialize,
            page_size=data["page_size"], cursor=data["cursor"],
        )  # fmt: skip


# --- One communication -------------------------------------------------------------------------------------


class CommunicationView(InboxApiView):
    @extend_schema(
        operation_id="communication_retrieve",
        summary="A communication with its messages and attachments",
        description="Audited as a view of the communication, like opening it in the Inbox.",
        parameters=[COMMUNICATION_ID, IF_NONE_MATCH],
        responses={200: s.CommunicationDetailSerializer, **COMMON_ERRORS, **NOT_FOUND, **NOT_MODIFIED},
        examples=[OpenApiExample("SMS conversation", response_only=True, value=EXAMPLE_DETAIL)],
    )
    def get(self, request, pk: int):
        return Response(_detail(request, _communication(request, pk), audit_view=True))


class AttachmentView(InboxApiView):
    @extend_schema(
        operation_id="attachment_download",
        summary="Download an attachment",
        description="The file, always as a download (`Content-Disposition: attachment`, `X-Content-Type-Options: "
        "nosniff`); access-checked and audited by the Inbox page's own download view.",
        parameters=[
            COMMUNICATION_ID,
            OpenApiParameter("attachment_id", OpenApiTypes.INT, OpenApiParameter.PATH),
        ],
        responses={(200, "*/*"): OpenApiTypes.BINARY, **COMMON_ERRORS, **NOT_FOUND},
    )
    def get(self, request, pk: int, attachment_id: int):
        # The page's view: communication_for (the access rule), the attachment of that communication, record_download.
        return attachment_download(request._request, pk=pk, attachment_pk=attachment_id)

    def finalize_response(self, request, response, *args, **kwargs):
        return APIView.finalize_response(self, request, response, *args, **kwargs)  # a file: no body ETag


SEND_EXAMPLES = [
    OpenApiExample("SMS, keep open", request_only=True, value={"body": "Yes, with food is best.", "close": False}),
    OpenApiExample("Secure email from a template", request_only=True,
                   value={"template": 3, "is_secure": True, "document_ids": [18]}),
    OpenApiExample("To an unlinked sender (Unrecognized), confirmed", request_only=True,
                   value={"body": "Could you tell us your date of birth?", "confirm_unlinked_recipient": True}),
    OpenApiExample("Sent", response_only=True, status_codes=["201"], value={
        "message": {**EXAMPLE_MESSAGE, "id": 302, "direction": "out", "author": EXAMPLE_PERSON,
                    "body_text": "Yes, with food is best.", "delivery_status": "queued", "attachments": []},
        "communication": {**EXAMPLE_ROW, "status": "closed"}}),
]  # fmt: skip


class SentSerializer(s.serializers.Serializer):
    message = s.MessageSerializer()
    communication = s.CommunicationSerializer()


IF_MATCH = OpenApiParameter(
    "If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER,
    description="The ETag of the communication as you last read it (`GET communications/<id>/`): the reply is "
    "sent only if nobody wrote in or changed it since — else 412 and nothing is sent (no overlapping replies).",
)  # fmt: skip


def _precondition(request, communication) -> Seen | None:
    """``If-Match``: the communication must still be the version the caller read. What that version showed (its
    newest message, status and assignee) goes to the service, which checks it again under the communication's
    lock, so a change between this check and the send is refused too."""
    wanted = _tags(request.headers.get("If-Match", ""))
    if not wanted or "*" in wanted:
        return None
    current = _detail(request, communication, audit_view=False)
    if etag_of(JSONRenderer().render(current)) not in wanted:
        raise PreconditionFailed()
    newest = max((m["id"] for m in current["messages"]), default=None)
    return Seen(last_message_id=newest, status=communication.status, assignee_id=communication.assignee_id)


class SendView(InboxApiView):
    @extend_schema(
        operation_id="communication_send",
        summary="Send a reply",
        description="Send and Close by default (`close: false` keeps it Open); secure email; the SMS sending line; a "
        "published template (placeholders filled from the patient and you; it fills `body`/`subject` when they are "
        "empty). On an Unrecognized communication (linked to no patient) it is refused (422) unless "
        "`confirm_unlinked_recipient` is true: the reply then goes, text only, to the raw sender address or number.",
        parameters=[COMMUNICATION_ID, IF_MATCH],
        request=s.SendSerializer,
        responses={
            201: SentSerializer,
            **BAD_REQUEST,
            **COMMON_ERRORS,
            **NOT_FOUND,
            **REFUSED,
            412: OpenApiResponse(
                s.ProblemSerializer, description="The communication changed since If-Match."
            ),
        },
        examples=SEND_EXAMPLES,
    )
    def post(self, request, pk: int):
        communication = _communication(request, pk)
        data = _validated(s.SendSerializer, request.data, user=request.user)
        seen = _precondition(request, communication)
        body, subject = data["body"], data["subject"]
        if data["template"] is not None:
            if communication.is_unrecognized:
                raise ValidationError(
                    {"template": ["Templates are filled from the patient: link this first."]}
                )
            channel = _template_channel(communication)
            template = published_templates(channel=channel).filter(pk=data["template"]).first()
            if template is None:
                raise ValidationError({"template": [f"No published {channel} template has this id."]})
            if not body.strip() and not data["body_html"].strip():
                body = fill(template.body, patient=communication.patient, user=request.user)
            if not subject and template.subject:
                subject = fill(template.subject, patient=communication.patient, user=request.user)
        is_email = communication.is_email
        content = ReplyContent(  # as the reply box builds it (careportal.forms.ReplyForm.reply_content)
            body="" if is_email and data["body_html"] else body,
            body_html=data["body_html"] if is_email else "",
            subject=subject,
            is_secure=data["is_secure"],
            sending_line=data["sending_line"] if communication.channel == "sms" else None,
            document_ids=tuple(dict.fromkeys(data["document_ids"])),
        )
        try:
            message = send_reply(
                user=request.user, communication=communication, content=content, close=data["close"], seen=seen,
                confirm_unlinked_recipient=data["confirm_unlinked_recipient"], request=request._request,
            )  # fmt: skip
        except ConversationChanged as changed:
            raise PreconditionFailed() from changed
        communication = _communication(request, pk)
        message = conversation_messages(communication).get(pk=message.pk)
        with_candidate_counts([communication])
        return Response(
            {
                "message": s.MessageSerializer(message).data,
                "communication": s.CommunicationSerializer(communication).data,
            },
            status=status.HTTP_201_CREATED,
        )


class StatusView(InboxApiView):
    @extend_schema(
        operation_id="communication_set_status",
        summary="Set the status (Open or Closed)",
        parameters=[COMMUNICATION_ID],
        request=s.StatusSerializer,
        responses={200: s.CommunicationSerializer, **BAD_REQUEST, **COMMON_ERRORS, **NOT_FOUND},
        examples=[OpenApiExample("Close", request_only=True, value={"status": "closed"}),
                  OpenApiExample("Closed", response_only=True, value={**EXAMPLE_ROW, "status": "closed"})],
    )  # fmt: skip
    def post(self, request, pk: int):
        communication = _communication(request, pk)
        data = _validated(s.StatusSerializer, request.data)
        set_status(
            user=request.user, communication=communication, status=data["status"], request=request._request
        )
        return _row(request, pk)


def _row(request, pk) -> Response:
    communication = _communication(request, pk)
    with_candidate_counts([communication])
    return Response(s.CommunicationSerializer(communication).data)


class AssignView(InboxApiView):
    @extend_schema(
        operation_id="communication_assign",
        summary="Assign, reassign or unassign",
        description="`assignee: null` unassigns. The assignee must have access to the patient (see the assignees "
        "list); anyone else is refused with 422.",
        parameters=[COMMUNICATION_ID],
        request=s.AssignSerializer,
        responses={200: s.CommunicationSerializer, **BAD_REQUEST, **COMMON_ERRORS, **NOT_FOUND, **REFUSED},
        examples=[OpenApiExample("Assign", request_only=True, value={"assignee": 7}),
                  OpenApiExample("Unassign", request_only=True, value={"assignee": None}),
                  OpenApiExample("Assigned", response_only=True, value=EXAMPLE_ROW)],
    )  # fmt: skip
    def post(self, request, pk: int):
        communication = _communication(request, pk)
        data = _validated(s.AssignSerializer, request.data)
        form = AssignForm({"assignee": data["assignee"] or ""})
        if not form.is_valid():
            raise _form_errors(form)
        assign(
            user=request.user, communication=communication, assignee=form.cleaned_data["assignee"],
            request=request._request,
        )  # fmt: skip
        return _row(request, pk)


class AssigneesView(InboxApiView):
    @extend_schema(
        operation_id="communication_assignees",
        summary="Who may be assigned",
        description="Only active Inbox users with access to the patient (the Inbox page's assignee list).",
        parameters=[COMMUNICATION_ID, IF_NONE_MATCH],
        responses={200: s.PersonSerializer(many=True), **COMMON_ERRORS, **NOT_FOUND, **NOT_MODIFIED},
        examples=[OpenApiExample("Assignees", response_only=True, value=[EXAMPLE_PERSON])],
    )
    def get(self, request, pk: int):
        return Response(s.PersonSerializer(assignee_candidates(_communication(request, pk)), many=True).data)


class LinkView(InboxApiView):
    @extend_schema(
        operation_id="communication_link",
        summary="Link an Unrecognized communication to a patient",
        description="To a patient, or one of their contacts. `remember: true` adds the sender's address or number "
        "to the patient (a new contact method) or contact, so the next message is recognised. Only patients you "
        "may see can be chosen. Already linked: 422.",
        parameters=[COMMUNICATION_ID],
        request=s.LinkSerializer,
        responses={200: s.CommunicationDetailSerializer, **BAD_REQUEST, **COMMON_ERRORS, **NOT_FOUND, **REFUSED},
        examples=[OpenApiExample("Link and remember", request_only=True, value={"patient": 12, "remember": True}),
                  OpenApiExample("Linked", response_only=True, value=EXAMPLE_DETAIL)],
    )  # fmt: skip
    def post(self, request, pk: int):
        communication = _communication(request, pk)
        data = _validated(s.LinkSerializer, request.data)
        form = LinkForm(
            {"patient": data.get("patient") or "", "contact": data.get("contact") or "",
             "remember": "on" if data["remember"] else ""},
            user=request.user,
        )  # fmt: skip
        if not form.is_valid():
            raise _form_errors(form)
        link_to_patient(
            user=request.user, communication=communication, patient=form.cleaned_data["patient"],
            contact=form.cleaned_data["contact"], remember=form.cleaned_data["remember"], request=request._request,
        )  # fmt: skip
        return Response(_detail(request, _communication(request, pk), audit_view=False))


# --- Patients, lines, templates ------------------------------------------------------------------------------


EXAMPLE_PATIENT = {
    "id": 12, "mrn": "MRN0000012", "first_name": "Maria", "last_name": "Lopez", "preferred_name": "",
    "birth_date": "1961-04-02", "preferred_language": "es", "time_zone": "America/Chicago",
    "contact_methods": [{"id": 30, "kind": "phone", "value": "+15550102030", "label": "mobile", "is_primary": True,
                         "is_opted_out": False}],
    "contacts": [{"id": 4, "name": "Rosa Lopez", "relationship": "daughter"}],
}  # fmt: skip


class PatientsView(InboxApiView):
    pagination_class = NamedCursorPagination

    @extend_schema(
        operation_id="patients_list",
        summary="Patients you may see",
        description="Every patient the access rule lets you see, by name, cursor-paginated; with `q`, a search (as "
        "the Link and New message dialogs search) returning at most 20 and no further page.",
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="1–100, default 50."),
            IF_NONE_MATCH,
        ],
        responses={200: page_envelope(s.PatientSerializer(many=True)), **BAD_REQUEST, **COMMON_ERRORS,
                   **NOT_MODIFIED},
        examples=[OpenApiExample("A page", response_only=True, value={"next": None, "results": [EXAMPLE_PATIENT]})],
    )  # fmt: skip
    def get(self, request):
        data = _query(request, s.PatientQuerySerializer)
        if data["q"].strip():
            patients = search_visible_patients(request.user, data["q"])
            return Response({"next": None, "results": s.PatientSerializer(patients, many=True).data})
        queryset = patients_visible_to(request.user).prefetch_related("contact_methods", "contacts")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(s.PatientSerializer(page, many=True).data)


class SendingLinesView(InboxApiView):
    @extend_schema(
        operation_id="sending_lines_list",
        summary="Sending lines you may use",
        description="The active lines you may send an SMS from (`sending_line` of a send).",
        parameters=[IF_NONE_MATCH],
        responses={200: s.SendingLineSerializer(many=True), **COMMON_ERRORS, **NOT_MODIFIED},
        examples=[OpenApiExample("Lines", response_only=True,
                                 value=[{"id": 1, "name": "Main line", "number": "+15550100000", "label": "Main line"}])],
    )  # fmt: skip
    def get(self, request):
        return Response(s.SendingLineSerializer(active_sending_lines(request.user), many=True).data)


class TemplatesView(InboxApiView):
    @extend_schema(
        operation_id="templates_list",
        summary="Published message templates",
        description="Templates published in Designer, optionally for one channel (those for any channel included). "
        "Placeholders are filled when a send names the template.",
        parameters=[OpenApiParameter("channel", OpenApiTypes.STR, enum=["sms", "email", "chat"]), IF_NONE_MATCH],
        responses={200: s.TemplateSerializer(many=True), **BAD_REQUEST, **COMMON_ERRORS, **NOT_MODIFIED},
        examples=[OpenApiExample("Templates", response_only=True, value=[{
            "id": 3, "name": "Lab results ready", "channel": "email", "subject": "Your results",
            "body": "Hello {{ patient.first_name }}, your results are ready."}])],
    )  # fmt: skip
    def get(self, request):
        data = _validated(
            s.TemplateQuerySerializer, {k: request.query_params.get(k) for k in request.query_params}
        )
        templates = published_templates(channel=data.get("channel")).order_by("name", "pk")
        return Response(s.TemplateSerializer(templates, many=True).data)


@extend_schema(exclude=True)
class NotFoundView(APIView):
    """Any other address under /api/v1/: a 404 problem (not the site's HTML page), whatever the caller."""

    permission_classes = []

    def get(self, request, *args, **kwargs):
        raise NotFound("Not found.")

    post = put = patch = delete = get
