"""Reads of the Inbox: which inboxes a user has, and the communications in each folder.

The page, the count badges, the WebSocket refresh and the API all call ``folder_communications`` so they
can never disagree.
"""

import json
import re
from dataclasses import dataclass, field
from functools import cached_property

import phonenumbers
from django.core.exceptions import EmptyResultSet, ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from careportal.access import communications_visible_to
from careportal.models import CareTeamMember, Contact, Patient
from designer.selectors import role_access

from .errors import FolderNotAllowed
from .folders import FOLDERS_BY_INBOX, Folder, InboxKind
from .models import Channel, Communication, Message

ALL_STATUSES = frozenset(Communication.Status.values)
FILTER_CHANNELS = {
    "sms": {Channel.SMS},
    "email": {Channel.EMAIL, Channel.SECURE_EMAIL},
    "chat": {Channel.CHAT},
}
ALL_FILTER_CHANNELS = frozenset(FILTER_CHANNELS)


@dataclass(frozen=True)
class FolderFilters:
    """Status and channel filters (all on by default), "unassigned only", and a search term."""

    statuses: frozenset[str] = ALL_STATUSES
    channels: frozenset[str] = ALL_FILTER_CHANNELS
    unassigned_only: bool = False
    query: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def selects_nothing(self) -> bool:
        """No status or no channel chosen (both Open and Closed chips off, say): the list is empty by choice, and
        no folder query is needed to know it."""
        return not self.statuses or not self.channels


def inboxes_for(user) -> list[InboxKind]:
    """My Inbox needs Inbox in the published role menu; Care Team needs Inbox Care Team (or Full Patient);
    All Patients needs Inbox Full Patient."""
    access = role_access(user)
    if not access.has_inbox:
        return []
    kinds = [InboxKind.MY]
    if access.can_care_team_inbox:
        kinds.append(InboxKind.CARE_TEAM)
    if access.can_all_patients_inbox:
        kinds.append(InboxKind.ALL_PATIENTS)
    return kinds


def folders_for(user) -> list[Folder]:
    return [folder for kind in inboxes_for(user) for folder in FOLDERS_BY_INBOX[kind]]


def _on_my_team(user, *, primary_only: bool = False) -> Exists:
    """EXISTS: the outer row's ``patient_id`` has ``user`` on its care team (as primary contact if asked)."""
    members = CareTeamMember.objects.filter(user=user, patient_id=OuterRef("patient_id"))
    if primary_only:
        members = members.filter(is_primary_contact=True)
    return Exists(members)


def _sent_messages(user) -> QuerySet[Message]:
    """What ``user`` sent: their outbound messages that are not internal notes (``message_sent_by_idx``)."""
    return Message.objects.filter(author=user, direction=Message.Direction.OUTBOUND, is_internal_note=False)


def _folder_q(user, folder: Folder) -> Q:
    """The folder rules of DESIGN.md, as correlated EXISTS so that a newest-first page stops after 50 rows."""
    Candidate = Communication.candidate_patients.through
    match folder:
        case Folder.ASSIGNED_TO_ME:
            return Q(assignee=user)
        case Folder.PRIMARY_CONTACT:
            return Q(is_unrecognized=False) & Q(_on_my_team(user, primary_only=True))
        case Folder.MY_UNRECOGNIZED:
            return Q(assignee=user, is_unrecognized=True)
        case Folder.SENT:
            return Q(Exists(_sent_messages(user).filter(communication_id=OuterRef("pk"))))
        case Folder.CARE_TEAM_DIRECTED:
            return Q(is_unrecognized=False) & Q(_on_my_team(user))
        case Folder.CARE_TEAM_UNRECOGNIZED:
            on_my_team = Candidate.objects.filter(_on_my_team(user), communication_id=OuterRef("pk"))
            return Q(is_unrecognized=True) & Q(Exists(on_my_team))
        case Folder.ALL_DIRECTED:
            return Q(is_unrecognized=False)
        case Folder.ALL_UNRECOGNIZED:
            return Q(is_unrecognized=True)
    raise FolderNotAllowed(folder)


def is_email_address(term: str) -> bool:
    """Whether ``term`` is one whole email address (not part of one, not several words)."""
    if "@" not in term or any(ch.isspace() for ch in term):
        return False
    try:
        validate_email(term)
    except ValidationError:
        return False
    return True


def text_words(term: str) -> list[str]:
    """The words full-text search looks for: a whole email address as itself, else each word, lower-cased."""
    term = term.strip()
    return [term] if is_email_address(term) else re.findall(r"\w+", term.lower())


def message_text_matches(term: str, *, prefix: bool = True) -> QuerySet[Message]:
    """Messages whose text matches ``term``: full-text (every word, the last as a prefix unless ``prefix`` is off; a
    whole email address as itself) on PostgreSQL, over the stored vector ``body_tsv`` and its GIN index (migration
    inbox/0007); a case-insensitive substring on SQLite."""
    if connection.vendor != "postgresql":
        return Message.objects.filter(body_text__icontains=term)
    term = term.strip()
    if is_email_address(term):
        # PostgreSQL's parser keeps a whole address as one lexeme (not its words): ask for exactly that one.
        matches = RawSQL("body_tsv @@ plainto_tsquery('simple', %s)", [term], output_field=BooleanField())
        return Message.objects.filter(matches)
    words = text_words(term)
    if not words:
        return Message.objects.none()
    tsquery = " & ".join([*words[:-1], f"{words[-1]}:*" if prefix else words[-1]])
    matches = RawSQL("body_tsv @@ to_tsquery('simple', %s)", [tsquery], output_field=BooleanField())
    return Message.objects.filter(matches)


def _name_q(term: str) -> Q:
    q = Q(first_name__icontains=term) | Q(last_name__icontains=term)
    parts = term.split()
    if len(parts) == 2:  # "Jane Doe"
        q |= Q(first_name__iexact=parts[0], last_name__iexact=parts[1])
    return q


SEARCH_ID_LIMIT = 20_000
RARE_TEXT_MESSAGES = 20_000  # expected matching messages up to which message text is resolved by its index


SEARCH_MAX_LENGTH = 200  # characters of a search box's text that are searched; the API refuses longer (400)


def search_term(raw: str) -> str:
    """What a search box's text searches for: trimmed and cut at ``SEARCH_MAX_LENGTH`` (a 100 KB "search" would
    otherwise reach the database as a pattern; SQLite refuses LIKE patterns over 50,000 bytes)."""
    return raw.strip()[:SEARCH_MAX_LENGTH].strip()


class Search:
    """Search: phone (to/from; a whole number or its last digits), email (to/from), patient or contact name,
    message text.

    Each kind is an index-driven set of communications (trigram indexes on names and addresses, full-text on
    message text on PostgreSQL); a communication matches when it is in any of them. ``kinds`` are filters on
    communications; message text is kept apart as the matching ``messages``, read by communication id.
    """

    def __init__(self, term: str, *, region: str = "US"):
        term = term.strip()
        self.term = term
        by_name = _name_q(term) | Q(preferred_name__icontains=term)
        parts = term.split()
        if len(parts) == 2:  # the name lists show: "Liz Taylor"
            by_name |= Q(preferred_name__iexact=parts[0], last_name__iexact=parts[1])
        patients = Patient.objects.filter(by_name).values("pk")
        contacts = Contact.objects.filter(_name_q(term)).values("pk")
        self.messages = message_text_matches(term).order_by()
        # The name kinds by whom they name: a page resolves the patients (or contacts) first and then reads their
        # communications by the patient's (contact's) own index, not by every communication's id.
        self.people = [(patients, "patient_id"), (contacts, "contact_id")]
        self.others = [Q(subject__icontains=term)]  # the kinds that are filters on communications themselves
        if is_email_address(term):  # a whole address: that address, by its index (comm_counterpart_upper_idx)
            self.others += [Q(counterpart__iexact=term), Q(inbound_address__address__iexact=term)]
        elif "@" in term:  # part of one
            email = term.lower()
            self.others += [Q(counterpart__icontains=email), Q(inbound_address__address__icontains=email)]
        else:
            phone = normalize_phone(term, region=region)
            self.others += [Q(counterpart=phone), Q(sending_line__number=phone)] if phone else []
            digits = phone_digits(term)
            if digits:  # part of a number, as people quote one ("the one ending 2030"): by the trigram index
                self.others.append(Q(counterpart__icontains=digits))
            elif len(term) >= 3 and not any(ch.isspace() for ch in term):  # part of an address ("ashaw18")
                self.others.append(Q(counterpart__icontains=term))

    @property
    def kinds(self) -> list[Q]:
        """Every kind but message text, each as a filter on communications."""
        return [Q(**{f"{by}__in": people}) for people, by in self.people] + self.others

    def text_is_rare(self) -> bool:
        """Whether at most ``RARE_TEXT_MESSAGES`` messages can match the text, by PostgreSQL's planner estimate (from
        the statistics of ``body_tsv``: a millisecond, and what the planner itself relies on) for each word alone.
        Several words match at most what their rarest word matches; the planner's estimate for the words together
        assumes they are independent, and words people search for together are not ("blood pressure": estimated
        1,200 messages of 5,000,000, found in 54,000)."""
        if connection.vendor != "postgresql":
            return True  # SQLite: small databases, one scan either way
        return self.text_estimate <= RARE_TEXT_MESSAGES

    @cached_property
    def text_estimate(self) -> float:
        """The planner's estimate of the messages the rarest word matches (0 when there is no word)."""
        words = text_words(self.term)
        estimates = []
        for index, word in enumerate(words):
            is_last = index == len(words) - 1  # the last word is searched as a prefix, as it is typed
            try:
                sql, params = message_text_matches(word, prefix=is_last).values("pk").query.sql_with_params()
            except EmptyResultSet:
                return 0
            with connection.cursor() as db:
                db.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plan = db.fetchone()[0]
            if isinstance(plan, str | bytes):
                plan = json.loads(plan)
            estimates.append(plan[0]["Plan"]["Plan Rows"])
        return min(estimates, default=0)

    def text_is_past_probing(self) -> bool:
        """One word the planner expects in more messages than a probe of the index reads (``SEARCH_ID_LIMIT``):
        probing would read that many and give up. Several words can match far fewer together than apart, so they
        are always probed."""
        return (
            connection.vendor == "postgresql"
            and len(text_words(self.term)) == 1
            and self.text_estimate > SEARCH_ID_LIMIT
        )

    @property
    def in_messages(self) -> Q:
        """The message-text kind as a filter on communications."""
        return Q(Exists(self.messages.filter(communication_id=OuterRef("pk"))))

    def matching_ids(self):
        """One ``… UNION …`` of every kind's ids."""
        communications = Communication.objects.order_by()
        parts = [communications.filter(q).values_list("pk", flat=True) for q in self.kinds]
        parts.append(self.messages.values_list("communication_id", flat=True))
        first, *rest = parts
        # UNION ALL: no de-duplication pass, so a LIMIT stops early; duplicates are harmless in IN (…).
        return first.union(*rest, all=True)

    @cached_property
    def selective_ids(self) -> list[int] | None:
        """The matching ids when there are at most ``SEARCH_ID_LIMIT`` of them (the usual case), else ``None``."""
        found = _found_ids(self.matching_ids())
        return None if found is None else sorted(found)

    def q(self) -> Q:
        # A selective search is resolved to its ids first, so the folder query looks them up by primary key; a term
        # matching a large share of everything stays a sub-select.
        ids = self.selective_ids
        return _ids_q(ids) if ids is not None else Q(pk__in=self.matching_ids())


PHONE_PART = re.compile(r"[\d\s().+-]+")
MIN_PHONE_DIGITS = 3  # a trigram: fewer digits would match a large share of every number


def phone_digits(term: str) -> str:
    """The digits of ``term`` when it is written like (part of) a phone number with at least ``MIN_PHONE_DIGITS``
    digits ("2030", "010-2030", "(555) 010"), else ""."""
    if not PHONE_PART.fullmatch(term):
        return ""
    digits = "".join(ch for ch in term if ch.isdigit())
    return digits if len(digits) >= MIN_PHONE_DIGITS else ""


def normalize_phone(value: str, *, region: str = "US") -> str | None:
    """E.164 form of a phone number as typed ("(555) 010-2030" → "+15550102030"), or None."""
    digits = sum(ch.isdigit() for ch in value)
    if digits < 7:
        return None
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def folder_communications(
    *, user, folder: Folder, filters: FolderFilters | None = None
) -> QuerySet[Communication]:
    """Communications in ``folder`` for ``user`` with ``filters`` applied, newest first.

    Raises ``FolderNotAllowed`` when the user's published role does not offer the folder's inbox.
    """
    filters = filters or FolderFilters()
    _require_folder(user, folder)
    # A folder whose own rule already implies visibility (care-team membership, assigned-and-unrecognized) skips the
    # general visibility filter, whose OR of sub-selects would stop PostgreSQL from driving the query by the folder's
    # index. tests/inbox/test_folders.py pins that both forms give the same rows.
    base = Communication.objects.all() if folder.implies_visibility else communications_visible_to(user)
    return _filtered(base.filter(_folder_q(user, folder)), folder, filters)


def _require_folder(user, folder: Folder) -> None:
    if folder not in folders_for(user):
        raise FolderNotAllowed(folder)


def _filtered(qs, folder: Folder, filters: FolderFilters):
    """The list filters (status, channel, unassigned only, search) on ``qs``, newest first."""
    if filters.statuses != ALL_STATUSES:
        qs = qs.filter(status__in=filters.statuses)
    if filters.channels != ALL_FILTER_CHANNELS:
        qs = qs.filter(channel__in={c for key in filters.channels for c in FILTER_CHANNELS[key]})
    if filters.unassigned_only and folder.is_shared:
        qs = qs.filter(assignee__isnull=True)
    if filters.query.strip():
        qs = qs.filter(Search(filters.query).q())
    return qs.order_by("-last_message_at", "-id")


def _after(qs, cursor: str):
    if not cursor:
        return qs
    at, pk = decode_cursor(cursor)
    # The plain bound lets an index scan start there (PostgreSQL cannot bound one by the OR alone).
    return qs.filter(Q(last_message_at__lt=at) | Q(last_message_at=at, pk__lt=pk), last_message_at__lte=at)


# A folder count stops at COUNT_CAP + 1, shown as "1,000+": nobody triages a thousand rows by their number, and
# counting an organisation-wide folder exactly would read every row of it on every change (docs/decisions.md).
COUNT_CAP = 1_000


def folder_counts(*, user, filters: FolderFilters | None = None) -> dict[Folder, int]:
    """Rows per folder, from the same selector as the list; a value above ``COUNT_CAP`` means "more than that".

    Every folder's capped count is a scalar sub-select of one statement: one round trip for the six or seven
    folders of the nav, not one each."""
    folders = folders_for(user)
    counts, parts, params = {}, [], []
    for folder in folders:
        capped = _capped(user, folder, filters)
        try:
            sql, folder_params = capped.query.sql_with_params()
        except EmptyResultSet:  # a filter that can match nothing (no status chosen): nothing to ask
            counts[folder] = 0
            continue
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) capped)")  # noqa: S608 — SQL compiled by the ORM, params apart
        params.extend(folder_params)
    if parts:
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(parts), params)
            values = iter(cursor.fetchone())
        counts.update({folder: next(values) for folder in folders if folder not in counts})
    return {folder: counts[folder] for folder in folders}


def folder_count(*, user, folder: Folder, filters: FolderFilters | None = None) -> int:
    """One folder's rows, counted up to ``COUNT_CAP + 1`` (one query)."""
    return _capped(user, folder, filters).count()


def _capped(user, folder: Folder, filters: FolderFilters | None) -> QuerySet:
    return (
        folder_communications(user=user, folder=folder, filters=filters)
        .order_by()
        .values("pk")[: COUNT_CAP + 1]
    )


def communication_for(*, user, pk) -> Communication:
    """One communication the user may see, with what its header needs; ``Communication.DoesNotExist`` otherwise
    (views turn it into 404 — an id the user may not see looks exactly like one that does not exist)."""
    return (
        communications_visible_to(user)
        .select_related("patient", "contact", "sending_line", "inbound_address", "assignee")
        .get(pk=pk)
    )


def conversation_messages(communication: Communication) -> QuerySet[Message]:
    """Messages oldest first, with their authors and attachments, in a constant number of queries."""
    return (
        communication.messages.select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


def inbox_users():
    """Active users whose published role menu holds Inbox."""
    from adminportal.models import User
    from designer.models import ConfigVersion, MenuItem, Role

    keys = Role.objects.filter(
        version__status=ConfigVersion.Status.PUBLISHED, is_active=True, menu_items__item=MenuItem.INBOX
    ).values("key")
    return User.objects.filter(is_active=True, role__in=keys)


def without_integration_accounts(users: QuerySet) -> QuerySet:
    """``users`` who are people. An integration account is a user whose published role holds the Inbox API policy —
    the README's set-up (and Admin Portal → Integrations, which offers a token only to such a user); it keeps the
    Inbox menu item for the API's folders, so the menu alone cannot tell it apart."""
    from designer.models import Policy
    from designer.selectors import role_keys_with_policy

    return users.exclude(role__in=role_keys_with_policy(Policy.INBOX_API))


def inbox_people():
    """Inbox users who are people: not integration accounts."""
    return without_integration_accounts(inbox_users())


def assignee_candidates(communication: Communication):
    """The assignee list (and @mention options) holds only active Inbox users who are people (``inbox_people``) with
    access to the patient; for an Unrecognized communication, those who can see at least one candidate, or every one
    of them when there is none."""
    from careportal.access import users_who_can_view

    users = inbox_people()
    if communication.patient_id:
        users = users.filter(users_who_can_view([communication.patient_id]))
    else:
        candidates = list(communication.candidate_patients.values_list("pk", flat=True))
        if candidates:
            users = users.filter(users_who_can_view(candidates))
    return users.distinct().order_by("first_name", "last_name", "username")


@dataclass(frozen=True)
class FolderPage:
    rows: list
    next_cursor: str | None


PAGE_SIZE = 50


def encode_cursor(communication: Communication) -> str:
    return cursor_for(communication.last_message_at, communication.pk)


def cursor_for(last_message_at, pk: int) -> str:
    return f"{last_message_at.timestamp():.6f}_{pk}"


def decode_cursor(cursor: str):
    """(last_message_at, id) from a cursor, or ``ValueError`` for a malformed one."""
    import datetime as dt

    stamp, _, pk = cursor.partition("_")
    return dt.datetime.fromtimestamp(float(stamp), tz=dt.UTC), int(pk)


def folder_page(
    *, user, folder: Folder, filters: FolderFilters | None = None, cursor: str = "", limit: int = PAGE_SIZE
) -> FolderPage:
    """One page of a folder by keyset pagination (newest first): never loads a whole folder, and the cost of a page
    does not grow with its depth. ``cursor`` is the ``next_cursor`` of the previous page."""
    filters = filters or FolderFilters()
    if filters.selects_nothing:  # no status or no channel chosen: no rows, and no query to build
        _require_folder(user, folder)
        return FolderPage(rows=[], next_cursor=None)
    if filters.query.strip():
        return _search_page(user, folder, filters, Search(filters.query), cursor, limit)
    if folder in TEAM_FOLDERS and connection.vendor == "postgresql":
        _require_folder(user, folder)
        return _page_of(_team_page_ids(user, folder, filters, cursor, limit), limit)
    if folder == Folder.SENT and connection.vendor == "postgresql":
        # What someone sent is a sliver of a large organisation: read it from their messages (an index holds it)
        # rather than walking every communication newest first looking for it. The ids are the folder's own rule,
        # so only visibility and the filters remain; the page's ids first, then its rows (the joins a row needs are
        # made for 50 rows, not for thousands).
        _require_folder(user, folder)
        sent = _found_ids(_sent_messages(user).values_list("communication_id", flat=True).distinct())
        if sent is not None:  # else they sent in very many: walk the folder like any other
            mine = communications_visible_to(user).filter(_ids_q(sent))
            qs = _after(_filtered(mine, folder, filters), cursor)
            return _page_of(list(qs.values_list("pk", flat=True)[: limit + 1]), limit)
    qs = _after(folder_communications(user=user, folder=folder, filters=filters), cursor)
    return _as_page(list(qs.select_related(*ROW_RELATED).only(*ROW_FIELDS)[: limit + 1]), limit)


ROW_RELATED = ("patient", "contact", "sending_line", "assignee")
# What a list row shows (``careportal.templatetags.portal.inbox_row``, ``inbox.api.serializers.CommunicationSerializer``):
# a page reads these columns only, so 50 rows do not build whole patients and users (their addresses, passwords and
# a dozen timestamps) to show a name. ``tests/careportal/test_inbox_folders.py`` pins that a page's query count does
# not grow with its rows, which a field missing here would break.
ROW_FIELDS = (
    *ROW_RELATED,
    "channel", "status", "subject", "counterpart", "is_unrecognized", "inbound_address",
    "last_message_at", "last_message_preview", "last_message_direction", "opened_at", "created_at",
    "patient__first_name", "patient__preferred_name", "patient__last_name",
    "contact__first_name", "contact__last_name", "contact__relationship", "contact__patient",
    "sending_line__label", "sending_line__number",
    "assignee__username", "assignee__first_name", "assignee__last_name",
)  # fmt: skip
TEAM_FOLDERS = {
    Folder.PRIMARY_CONTACT: True,
    Folder.CARE_TEAM_DIRECTED: False,
}  # folder → primary contact only


def _team_page_ids(user, folder: Folder, filters: FolderFilters, cursor: str, limit: int) -> list[int]:
    """A care-team folder's page on PostgreSQL, driven from the user's care teams: for each of their patients the
    newest ``limit + 1`` communications (by the patient's recency index), merged newest first.

    A nurse's patients are a fraction of a per cent of a large organisation, so walking everything newest first and
    checking each row's care team (the plan PostgreSQL picks for the equivalent ``EXISTS``, expecting matches to come
    early) reads tens of thousands of rows per page; a ``LATERAL`` join per care-team patient reads about a page.
    ``tests/inbox/test_folders.py`` pins that it returns exactly what ``folder_communications`` does."""
    team = CareTeamMember._meta.db_table
    per_patient = _filtered(
        Communication.objects.filter(is_unrecognized=False, patient_id=RawSQL("t.patient_id", [])),
        folder,
        filters,
    )
    inner_sql, inner_params = (
        _after(per_patient, cursor).values_list("pk", "last_message_at")[: limit + 1].query.sql_with_params()
    )
    primary = " AND t.is_primary_contact" if TEAM_FOLDERS[folder] else ""
    # Only identifiers from the models and the ORM's own parameterised SQL are interpolated; values are parameters.
    sql = (
        f"SELECT x.id FROM {team} t CROSS JOIN LATERAL ({inner_sql}) AS x(id, at) "  # noqa: S608
        f"WHERE t.user_id = %s{primary} ORDER BY x.at DESC, x.id DESC LIMIT %s"
    )
    with connection.cursor() as db:
        db.execute(sql, [*inner_params, user.pk, limit + 1])
        return [row[0] for row in db.fetchall()]


def _page_of(ids: list[int], limit: int) -> FolderPage:
    """The rows of ``ids`` (newest first, ``limit + 1`` at most) as a page."""
    by_pk = Communication.objects.select_related(*ROW_RELATED).only(*ROW_FIELDS).in_bulk(ids)
    return _as_page([by_pk[pk] for pk in ids if pk in by_pk], limit)


def _as_page(rows: list[Communication], limit: int) -> FolderPage:
    """Up to ``limit + 1`` rows newest first as a page: the extra row only says there is a next page."""
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return FolderPage(rows=rows[:limit], next_cursor=next_cursor)


def _search_page(user, folder, filters, search: "Search", cursor: str, limit: int) -> FolderPage:
    """A searched page: the newest ``limit + 1`` matches of each kind of search (name, contact, subject, message
    text, address or number), each one query PostgreSQL can serve from that kind's index or by walking the folder
    newest first, merged newest first. However many communications a term matches — three or three million — a
    page reads at most ``limit + 1`` rows per kind, and the rows it returns are exactly the folder's newest matches
    after ``cursor``."""
    from dataclasses import replace

    unsearched = _after(
        folder_communications(user=user, folder=folder, filters=replace(filters, query="")), cursor
    )
    # A kind with few matches is resolved to its ids by its own index first (a walk newest first would read the
    # whole folder looking for them) and read by those ids; a kind matching a large share is a filter on a walk of
    # the folder newest first, which meets its newest matches early. Message text: see below.
    resolved: list[Q] = []
    walked: list[Q] = []
    for people, by in search.people:
        _sort_kind(people.values_list("pk", flat=True), Q(**{f"{by}__in": people}), by, resolved, walked)
    for q in search.others:
        _sort_kind(Communication.objects.filter(q).values_list("pk", flat=True), q, "pk", resolved, walked)
    newest: dict[int, object] = {}

    def open_rows():
        """The folder's rows that can still be on the page: once ``limit + 1`` rows are found, only rows newer than
        the last of them. Each kind after the first looks at those only, so its walk stops at the page's end."""
        if len(newest) <= limit:
            return unsearched
        at, pk = sorted(((at, pk) for pk, at in newest.items()), reverse=True)[limit]
        # The plain bound lets the walk stop there (PostgreSQL cannot bound an index scan by the OR alone).
        newer = Q(last_message_at__gt=at) | Q(last_message_at=at, pk__gt=pk)
        return unsearched.filter(newer, last_message_at__gte=at)

    def take(matches: Q) -> None:
        newest.update(open_rows().filter(matches).values_list("pk", "last_message_at")[: limit + 1])

    # One query per kind, not one for any of them: as one OR, PostgreSQL can only walk the folder testing each row,
    # which reads all of a nurse's care-team folder of a large organisation when the term is rare in it (seconds);
    # a kind on its own it can join from its own side. Common kinds first: they fill the page from the newest rows.
    for matches in walked + resolved:
        take(matches)
    # Message text last, on the rows that can still be on the page: tested row by row on a window of the newest of
    # them when the words are common, or when more than a few messages match (a cheap probe of the full-text index:
    # the planner's estimate cannot tell a rare word from an unknown one, and moves with each ANALYZE); read from
    # the full-text index when few match, or when the window held too few (words common apart, seldom together).
    texts = search.messages.values_list("communication_id", flat=True)
    text_found = few = None
    if not search.text_is_rare():
        text_found = _text_walked(open_rows(), search, limit)
    elif connection.vendor == "postgresql":
        few = _found_ids(texts, KIND_IDS)
        if few is None:
            text_found = _text_walked(open_rows(), search, limit)
    if text_found is not None:
        newest.update(text_found)
    else:  # rare words, or common words seldom together ("blood tomorrow"): what they match is few, by the index
        if few is None and not search.text_is_past_probing():
            few = _found_ids(texts.distinct())
        if few is None:
            take(search.in_messages)
        elif few:
            take(_ids_q(few))
    return _page_of(sorted(newest, key=lambda pk: (newest[pk], pk), reverse=True)[: limit + 1], limit)


# How many of a folder's newest rows a search for common words tests one by one before it asks the full-text index
# instead: a word in many messages is found among the newest rows within a few hundred of them.
TEXT_WALK_WINDOW = 5_000


def _text_walked(unsearched, search: "Search", limit: int) -> list[tuple[int, object]] | None:
    """The newest ``limit + 1`` communications of ``unsearched`` (a folder, newest first) with a message matching the
    text, found by testing the folder's newest ``TEXT_WALK_WINDOW`` rows one by one, each by its own messages
    (``message_conversation_idx``); ``None`` when the window holds fewer matches and the folder goes on past it.

    Written as a scalar sub-select on a window, which PostgreSQL runs row by row in the walk's order and stops at
    the page: as ``EXISTS`` it turns the test into a join that first collects every matching message (tens of
    thousands for common words, read from all over the table)."""
    window = unsearched.order_by("-last_message_at", "-id").values_list("pk", "last_message_at")
    inner_sql, inner_params = window[:TEXT_WALK_WINDOW].query.sql_with_params()
    probe = search.messages.filter(communication_id=RawSQL("w.id", [])).values("pk")[:1]
    probe_sql, probe_params = probe.query.sql_with_params()
    # Only the ORM's own parameterised SQL is interpolated; every value is a parameter.
    sql = (
        f"SELECT w.id, w.at FROM ({inner_sql}) AS w(id, at) WHERE ({probe_sql}) IS NOT NULL "  # noqa: S608
        "ORDER BY w.at DESC, w.id DESC LIMIT %s"
    )
    with connection.cursor() as db:
        db.execute(sql, [*inner_params, *probe_params, limit + 1])
        found = db.fetchall()
    if len(found) > limit or not window[TEXT_WALK_WINDOW : TEXT_WALK_WINDOW + 1].exists():
        return found
    return None


def _sort_kind(ids: QuerySet, otherwise: Q, field: str, resolved: list[Q], walked: list[Q]) -> None:
    """A kind of search with at most ``KIND_IDS`` matching ids (of ``field``) goes to ``resolved`` as a filter on
    those ids, one with more to ``walked`` as ``otherwise``; one with none to neither."""
    found = _found_ids(ids, KIND_IDS)
    if found is None:
        walked.append(otherwise)
    elif found:
        resolved.append(_ids_q(found, field))


def _found_ids(ids: QuerySet, up_to: int | None = None) -> set | None:
    """The ids ``ids`` (a query of ids) gives, read up to ``up_to`` (``SEARCH_ID_LIMIT``); ``None`` when there are
    more."""
    up_to = SEARCH_ID_LIMIT if up_to is None else up_to
    found = set(ids.order_by()[: up_to + 1])
    return found if len(found) <= up_to else None


# A kind of search (a name, an address, a subject) matching more communications than this is a filter on the walk
# of the folder newest first, which meets its newest matches early; reading thousands of ids from a trigram index
# costs more than that walk.
KIND_IDS = 2_000


def _ids_q(ids, field: str = "pk") -> Q:
    if connection.vendor == "postgresql":
        # One array parameter rather than thousands of placeholders; PostgreSQL reads each id from an index that
        # also holds what a page sorts and filters by (migration inbox/0008), without visiting the table.
        return Q(**{f"{field}__in": RawSQL("SELECT unnest(%s::bigint[])", [sorted(ids)])})
    return Q(**{f"{field}__in": ids})


def with_candidate_counts(rows: list[Communication]) -> list[Communication]:
    """Unrecognized rows show how many patients their sender could be: one grouped query for the whole page."""
    from django.db.models import Count

    unrecognized = [c.pk for c in rows if c.is_unrecognized]
    counts = {}
    if unrecognized:
        Candidate = Communication.candidate_patients.through
        counts = dict(
            Candidate.objects.filter(communication_id__in=unrecognized)
            .values("communication_id")
            .annotate(n=Count("pk"))
            .values_list("communication_id", "n")
        )
    for row in rows:
        row.candidate_count = counts.get(row.pk, 0)
    return rows


SEND_FROM_LINE = "send_from_line"


def sending_lines_usable_by(user) -> QuerySet:
    """Every line (active or not) ``user`` may send from — the one rule for "who may send from a line":

    - a line with no explicit ``send_from_line`` grant (django-guardian) may be used by every Inbox user;
    - a line with one or more grants only by the users granted (a deactivated sender's grant still counts, so
      deactivating the last sender never opens the line to everyone);
    - a user's own direct line (``SendingLine.owner``) always by its owner.
    Anonymous and deactivated users may use none.
    """
    from .models import SendingLine, SendingLineUserObjectPermission

    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return SendingLine.objects.none()
    grants = SendingLineUserObjectPermission.objects.filter(
        permission__codename=SEND_FROM_LINE, content_object_id=OuterRef("pk")
    )
    return SendingLine.objects.filter(~Exists(grants) | Exists(grants.filter(user=user)) | Q(owner=user))


def active_sending_lines(user) -> QuerySet:
    """Lines ``user`` may pick for an SMS (the reply box and the new-SMS picker), label (or number) order."""
    return sending_lines_usable_by(user).filter(is_active=True).order_by("label", "number")


def can_send_from_line(user, line) -> bool:
    return line is not None and sending_lines_usable_by(user).filter(pk=line.pk).exists()


@dataclass(frozen=True)
class ChangesSince:
    """What others changed on a communication since a user last saw it (the reply box's collision guard)."""

    messages: list = field(default_factory=list)
    status: str = ""  # the new status, when it differs from the one seen
    status_by: str = ""
    assignee_changed: bool = False
    assignee: object = None
    assignee_by: str = ""

    def __bool__(self) -> bool:
        return bool(self.messages or self.status or self.assignee_changed)


def changes_since(
    *, user, communication: Communication, last_message_id: int | None, status: str, assignee_id: int | None
) -> ChangesSince:
    """Messages newer than ``last_message_id`` written by anyone but ``user`` (a colleague's reply, the patient
    writing again), and a status or assignee different from the ones ``user`` saw — unless ``user`` made that
    change themselves (in another tab). Who made a change comes from the audit log."""
    from .models import AuditEvent

    newer = conversation_messages(communication).filter(pk__gt=last_message_id or 0)
    messages = [m for m in newer if m.author_id != user.pk]

    def last_change(action):
        return (
            AuditEvent.objects.filter(communication=communication, action=action)
            .order_by("-at", "-id")
            .first()
        )

    new_status, status_by = "", ""
    if status and status != communication.status:
        event = last_change(AuditEvent.Action.STATUS_CHANGED)
        by_user = event is not None and event.detail.get("status") == communication.status
        if not (by_user and event.actor_id == user.pk):
            new_status = communication.status
            status_by = event.actor_label if by_user else ""
    assignee_changed, assignee_by = False, ""
    if communication.assignee_id != assignee_id:
        event = last_change(AuditEvent.Action.ASSIGNMENT_CHANGED)
        if event is None or event.actor_id != user.pk:
            assignee_changed = True
            assignee_by = event.actor_label if event is not None else ""
    return ChangesSince(
        messages=messages,
        status=new_status,
        status_by=status_by,
        assignee_changed=assignee_changed,
        assignee=communication.assignee if assignee_changed else None,
        assignee_by=assignee_by,
    )


# --- Search all inboxes ---------------------------------------------------------------------------------------

# A folder whose every row one of these folders of the same user also holds (each folder's rows are visible to the
# user, and All Patients' two folders split everything visible between them): searching that one finds them.
CONTAINED_IN = {
    Folder.PRIMARY_CONTACT: {Folder.CARE_TEAM_DIRECTED, Folder.ALL_DIRECTED},
    Folder.CARE_TEAM_DIRECTED: {Folder.ALL_DIRECTED},
    Folder.MY_UNRECOGNIZED: {Folder.ASSIGNED_TO_ME, Folder.ALL_UNRECOGNIZED},
    Folder.CARE_TEAM_UNRECOGNIZED: {Folder.ALL_UNRECOGNIZED},
}
EVERYTHING_VISIBLE = (Folder.ALL_DIRECTED, Folder.ALL_UNRECOGNIZED)


def search_all_inboxes(
    *, user, filters: FolderFilters, cursor: str = "", limit: int = PAGE_SIZE
) -> FolderPage:
    """One page of "Search all inboxes": the communications matching ``filters.query`` (with the status and channel
    filters; "unassigned only" is a folder's, not applied) in any folder the user has — the union of
    ``folders_for(user)`` — newest first, paged like a folder (same cursors). Each row's ``found_in`` lists the
    folders it is in.

    The same search and the same access rule as a folder: each folder searched is ``folder_page``'s own search, and
    the page is the newest ``limit`` of their union, exact because a row among the union's newest ``limit`` is among
    its own folder's newest ``limit``. Folders another one contains are not searched again (``CONTAINED_IN``)."""
    folders = folders_for(user)
    if not folders:
        raise FolderNotAllowed(Folder.ASSIGNED_TO_ME)
    if not filters.query.strip():
        return FolderPage(rows=[], next_cursor=None)
    filters = FolderFilters(statuses=filters.statuses, channels=filters.channels, query=filters.query)
    if all(folder in folders for folder in EVERYTHING_VISIBLE):
        searched = list(EVERYTHING_VISIBLE)
    else:
        searched = [f for f in folders if not CONTAINED_IN.get(f, set()) & set(folders)]
    found: dict[int, Communication] = {}
    more = False
    for folder in searched:
        page = folder_page(user=user, folder=folder, filters=filters, cursor=cursor, limit=limit)
        more = more or page.next_cursor is not None
        found.update((row.pk, row) for row in page.rows)
    rows = sorted(found.values(), key=lambda c: (c.last_message_at, c.pk), reverse=True)
    next_cursor = encode_cursor(rows[limit - 1]) if more or len(rows) > limit else None
    rows = rows[:limit]
    with_found_in(user=user, rows=rows)
    return FolderPage(rows=rows, next_cursor=next_cursor)


def with_found_in(*, user, rows: list[Communication]) -> list[Communication]:
    """Sets each row's ``found_in``: the folders of ``user`` (in menu order) it is in, by each folder's own rule
    (one query per folder, by the rows' ids)."""
    ids = [row.pk for row in rows]
    in_folder: dict[int, list[Folder]] = {pk: [] for pk in ids}
    if ids:
        for folder in folders_for(user):
            for pk in (
                folder_communications(user=user, folder=folder)
                .filter(pk__in=ids)
                .values_list("pk", flat=True)
            ):
                in_folder[pk].append(folder)
    for row in rows:
        row.found_in = in_folder.get(row.pk, [])
    return rows
