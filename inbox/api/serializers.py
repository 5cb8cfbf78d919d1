"""What the Inbox API reads and writes. Output serializers describe the rows the selectors return; input
serializers only check shape and pick ids from the querysets the access rule allows — every business rule stays in
``inbox.services`` (a refused action is a 422 problem with the service's own message)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from careportal.models import Contact, Patient, PatientContactMethod
from designer.models import MessageTemplate
from inbox.folders import Folder, InboxKind
from inbox.models import Attachment, Communication, Message, SendingLine
from inbox.selectors import ALL_FILTER_CHANNELS, ALL_STATUSES, SEARCH_MAX_LENGTH, active_sending_lines

# --- Problems (RFC 9457) -------------------------------------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="A URI naming the kind of problem.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="What went wrong, fit to show.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Invalid input: field → messages.",
    )


# --- Small nested shapes ------------------------------------------------------------------------------------


class PersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="full_name")


class PatientRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="full_name")


class ContactRefSerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()

    class Meta:
        model = Contact
        fields = ["id", "name", "relationship"]

    def get_name(self, contact) -> str:
        return f"{contact.first_name} {contact.last_name}".strip()


class SendingLineSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name", read_only=True)

    class Meta:
        model = SendingLine
        fields = ["id", "name", "number", "label"]


# --- Inboxes and folders --------------------------------------------------------------------------------------


class FolderSerializer(serializers.Serializer):
    folder = serializers.ChoiceField(choices=Folder.choices, help_text="Inbox and folder, e.g. my/assigned.")
    name = serializers.CharField()
    count = serializers.IntegerField(
        help_text="Communications in the folder with the filters applied, counted up to 1,000 (see count_capped)."
    )
    count_capped = serializers.BooleanField(
        help_text="True when the folder holds more than 1,000 communications: count is then 1,000."
    )
    communications_url = serializers.CharField()


class InboxSerializer(serializers.Serializer):
    inbox = serializers.ChoiceField(choices=InboxKind.choices)
    name = serializers.CharField()
    folders = FolderSerializer(many=True)


class FolderFilterSerializer(serializers.Serializer):
    """The Inbox page's filters: status and channel (all by default), unassigned only (shared folders), search."""

    status = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(ALL_STATUSES)), required=False, default=list,
        help_text="Repeat to allow several; left out means both Open and Closed; an empty value alone means none.",
    )  # fmt: skip
    channel = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(ALL_FILTER_CHANNELS)), required=False, default=list,
        help_text="sms, email (includes Secure Email), chat. Repeat to allow several; left out means all; an empty "
        "value alone means none.",
    )  # fmt: skip
    unassigned = serializers.BooleanField(
        required=False, default=False, help_text="Only unassigned (Care Team and All Patients folders)."
    )
    q = serializers.CharField(
        required=False, default="", max_length=SEARCH_MAX_LENGTH, allow_blank=True, trim_whitespace=True,
        help_text="Search: phone (to/from), email (to/from), patient or contact name, message text.",
    )  # fmt: skip


class FolderPageQuerySerializer(FolderFilterSerializer):
    cursor = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
    page_size = serializers.IntegerField(required=False, default=50, min_value=1, max_value=100)


class CommunicationSerializer(serializers.ModelSerializer):
    """A row of a folder list."""

    patient = PatientRefSerializer(allow_null=True)
    contact = ContactRefSerializer(allow_null=True)
    sending_line = SendingLineSerializer(allow_null=True)
    assignee = PersonSerializer(allow_null=True)
    candidate_count = serializers.SerializerMethodField(
        help_text="Possible patients of an Unrecognized sender."
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = Communication
        fields = [
            "id", "url", "channel", "status", "is_unrecognized", "subject", "counterpart", "patient", "contact",
            "sending_line", "assignee", "last_message_at", "last_message_preview", "last_message_direction",
            "candidate_count",
        ]  # fmt: skip

    def get_candidate_count(self, communication) -> int:
        return getattr(communication, "candidate_count", 0)

    def get_url(self, communication) -> str:
        return reverse("api:communication", args=[communication.pk])


class AttachmentSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField(
        help_text="Access-checked and audited download (always an attachment, never rendered inline)."
    )

    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "download_url"]

    def get_download_url(self, attachment) -> str:
        return reverse("api:attachment", args=[attachment.message.communication_id, attachment.pk])


class MessageSerializer(serializers.ModelSerializer):
    author = PersonSerializer(allow_null=True)
    attachments = AttachmentSerializer(many=True)

    class Meta:
        model = Message
        fields = [
            "id", "direction", "author", "sender_name", "sender_address", "recipient_address", "subject",
            "body_text", "body_html", "is_secure", "is_internal_note", "is_auto_reply", "delivery_status",
            "created_at", "sent_at", "attachments",
        ]  # fmt: skip


class CommunicationDetailSerializer(CommunicationSerializer):
    messages = serializers.SerializerMethodField()
    candidates = serializers.SerializerMethodField(
        help_text="Unrecognized: the candidate patients (matched by the sender) that you may see."
    )

    class Meta(CommunicationSerializer.Meta):
        fields = [
            *CommunicationSerializer.Meta.fields,
            "opened_at",
            "closed_at",
            "created_at",
            "messages",
            "candidates",
        ]

    @extend_schema_field(MessageSerializer(many=True))
    def get_messages(self, communication):
        return MessageSerializer(self.context["messages"], many=True).data

    @extend_schema_field(PatientRefSerializer(many=True))
    def get_candidates(self, communication):
        return PatientRefSerializer(self.context.get("candidates", []), many=True).data


# --- Patients ---------------------------------------------------------------------------------------------------


class ContactMethodSerializer(serializers.ModelSerializer):
    class Meta:
        model = PatientContactMethod
        fields = ["id", "kind", "value", "label", "is_primary", "is_opted_out"]


class PatientSerializer(serializers.ModelSerializer):
    contact_methods = ContactMethodSerializer(many=True)
    contacts = ContactRefSerializer(many=True)

    class Meta:
        model = Patient
        fields = [
            "id", "mrn", "first_name", "last_name", "preferred_name", "birth_date", "preferred_language",
            "time_zone", "contact_methods", "contacts",
        ]  # fmt: skip


class PatientQuerySerializer(serializers.Serializer):
    q = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=SEARCH_MAX_LENGTH,
        help_text="Name (every word), MRN, email or phone number; at most 20 results, no further pages.",
    )  # fmt: skip
    cursor = serializers.CharField(required=False, allow_blank=True, max_length=200)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)


class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = MessageTemplate
        fields = ["id", "name", "channel", "subject", "body"]


# --- Actions --------------------------------------------------------------------------------------------------


class SendSerializer(serializers.Serializer):
    """A reply, as the reply box sends it."""

    body = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False, max_length=100_000,
        help_text="Plain text (SMS, chat; email when no body_html).",
    )  # fmt: skip
    body_html = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False, max_length=500_000,
        help_text="Email only; sanitised like the page's editor.",
    )  # fmt: skip
    subject = serializers.CharField(required=False, default="", allow_blank=True, max_length=255)
    is_secure = serializers.BooleanField(
        required=False, default=False, help_text="Email only: the patient gets a link, never the content."
    )
    sending_line = serializers.PrimaryKeyRelatedField(
        queryset=SendingLine.objects.none(), required=False, allow_null=True, default=None,
        help_text="SMS without a line yet: the active sending line to send from.",
        error_messages={
            "does_not_exist": "No active sending line you may send from has the id {pk_value}.",
            "incorrect_type": "A sending line is given by its id (a number).",
        },
    )  # fmt: skip
    template = serializers.IntegerField(
        required=False, allow_null=True, default=None,
        help_text="A published template for this channel; fills body and subject when they are empty.",
    )  # fmt: skip
    document_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=20,
        help_text="The patient's documents to attach.",
    )  # fmt: skip
    close = serializers.BooleanField(
        required=False, default=True, help_text="true: Send and Close (default); false: Send and keep Open."
    )
    confirm_unlinked_recipient = serializers.BooleanField(
        required=False, default=False,
        help_text="An Unrecognized communication (linked to no patient): true confirms that the reply goes to its "
        "raw sender address or number (`counterpart`); without it the send is refused (422). Text only: no "
        "documents, template or secure email. The audit event names the unlinked recipient.",
    )  # fmt: skip

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:  # lines this user may send from (the reply box's picker)
            self.fields["sending_line"].queryset = active_sending_lines(user)


class StatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Communication.Status.choices)


class AssignSerializer(serializers.Serializer):
    assignee = serializers.IntegerField(
        allow_null=True, min_value=1,
        help_text="A user id from the communication's assignees list, or null to unassign.",
    )  # fmt: skip


class LinkSerializer(serializers.Serializer):
    """Link to a patient, or to one of a patient's contacts (which implies the patient). The rules are the Link
    dialog's (``careportal.forms.LinkForm``): only patients the caller may see can be chosen, and any other id is
    "not found", saying nothing about that patient."""

    patient = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    contact = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    remember = serializers.BooleanField(
        required=False, default=False,
        help_text="Add the sender's address or number to the patient (or contact) so the next message is recognised.",
    )  # fmt: skip


class TemplateQuerySerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=["sms", "email", "chat"], required=False)
