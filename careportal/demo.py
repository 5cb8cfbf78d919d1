"""Synthetic demo data for the Care Portal and its Inbox, built by ``manage.py seed_demo``.

Everything comes from one seed (``random.Random`` plus a seeded Faker), so the same seed gives the same data. Rows
are built as plain tuples with their primary keys assigned from a reserved block of ids; on PostgreSQL they are
written with COPY while the tables' secondary indexes and foreign keys are set aside, then rebuilt in one pass
(1,000,000 communications with 5,000,000 messages in a few minutes); elsewhere (SQLite, for ``make run`` and the
tests) with ``bulk_create``. All phone numbers are synthetic ``+1555…`` E.164 numbers and all email addresses use
``example.com`` or ``.example`` domains. No audit events are written: nothing here is somebody's action.
"""

import datetime as dt
import enum
import html
import random
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from faker import Faker
from tqdm import tqdm

from adminportal.models import Region, User
from designer.models import (
    ConfigVersion,
    MenuItem,
    MessageTemplate,
    Policy,
    PolicyGrant,
    Role,
    RoleMenuItem,
    TemplateChannel,
)
from inbox.models import Attachment, Channel, Communication, InboundAddress, Message, SendingLine

from .models import CareTeamMember, Contact, ContactKind, Document, Encounter, Patient, PatientContactMethod

BATCH_SIZE = 5000  # communications per batch, and rows per bulk_create, where COPY is not used
COPY_BATCH = (
    20_000  # communications per batch on PostgreSQL: each batch's end waits for the server to catch up
)
PROGRESS_SECONDS = 10  # a plain progress line at least this often (and at every further tenth of the work)
MAINTENANCE_WORK_MEM = "1GB"  # PostgreSQL, for rebuilding the indexes after the load
PARALLEL_MAINTENANCE_WORKERS = 2
# Patients per clinical team. The named demo staff are the first team; a larger organisation gets one more team of
# generated nurses and providers per further TEAM_PATIENTS patients, so a care-team member's panel, assignments and
# sent messages stay the size a real person has however many patients the organisation holds.
TEAM_PATIENTS = 2000
TEAM_NURSES = 4
TEAM_PROVIDERS = 3
MESSAGES_PER_COMMUNICATION = 5
MAX_MESSAGES_PER_COMMUNICATION = 24
MAX_PATIENTS = 1_000_000  # the synthetic phone-number ranges below hold this many patients
DOCUMENT_PATIENTS = 50  # only the first patients get real (tiny) files in storage
OUTBOUND_MESSAGE_ID_DOMAIN = "careinbox.local"
MAX_REFERENCES = 20  # as the reply service keeps References short
STAFF_EMAIL_DOMAIN = "clinic.example"

IN = Message.Direction.INBOUND
OUT = Message.Direction.OUTBOUND
EMAIL_CHANNELS = (Channel.EMAIL, Channel.SECURE_EMAIL)


# --- Configuration, staff and logins ---------------------------------------------------------------------


@dataclass(frozen=True)
class RoleSpec:
    key: str
    name: str
    menu: tuple[MenuItem, ...]
    policies: tuple[Policy, ...]


ROLES = (
    RoleSpec(
        "care-nurse",
        "Care Team Nurse",
        (MenuItem.HOME, MenuItem.INBOX, MenuItem.PATIENTS),
        (Policy.INBOX_CARE_TEAM,),
    ),
    # No Inbox on purpose: turning it on in Designer is part of the demo.
    RoleSpec("care-coordinator", "Care Coordinator", (MenuItem.HOME, MenuItem.PATIENTS), ()),
    RoleSpec(
        "team-lead",
        "Team Lead",
        (MenuItem.HOME, MenuItem.INBOX, MenuItem.PATIENTS),
        (Policy.INBOX_FULL_PATIENT, Policy.EDIT_PATIENT_PROFILE),
    ),
    RoleSpec("designer", "Configuration Designer", (MenuItem.HOME,), (Policy.DESIGNER,)),
    RoleSpec("administrator", "Administrator", (MenuItem.HOME,), (Policy.ADMINISTRATOR,)),
    RoleSpec("integration", "Integration", (), (Policy.INBOX_API,)),
)

TEMPLATES = (
    (
        "appointment-reminder",
        "Appointment reminder",
        TemplateChannel.SMS,
        "",
        "Hi {{ patient.first_name }}, this is {{ user.full_name }} from your care team. A reminder of your "
        "appointment on [date] at [time]. Reply C to confirm or call us to reschedule.",
    ),
    (
        "lab-results-ready",
        "Lab results ready",
        TemplateChannel.EMAIL,
        "Your lab results are ready",
        "Hello {{ patient.first_name }},\n\nYour recent lab results are ready and your provider has reviewed "
        "them. [Summary]\n\nIf you have any questions, reply to this message.\n\n{{ user.full_name }}\nCare team",
    ),
    (
        "refill-sent",
        "Refill sent to pharmacy",
        TemplateChannel.ANY,
        "Your prescription refill",
        "Hi {{ patient.first_name }}, your refill request has been sent to your pharmacy. It is usually ready "
        "within 24 hours. - {{ user.full_name }}",
    ),
    (
        "follow-up-check-in",
        "Follow-up check-in",
        TemplateChannel.ANY,
        "Checking in after your visit",
        "Hi {{ patient.first_name }}, this is {{ user.full_name }}. How have you been feeling since your last "
        "visit? Reply here if anything has changed.",
    ),
)


@dataclass(frozen=True)
class StaffSpec:
    username: str
    first_name: str
    last_name: str
    title: str
    role: str
    time_zone: str
    team_role: str = ""  # their role on patients' care teams; empty = on no care team
    is_admin: bool = False


STAFF = (
    StaffSpec("nurse", "Nora", "Diaz", "RN", "care-nurse", "America/New_York", "Nurse"),
    StaffSpec(
        "coordinator", "Carlos", "Mendes", "", "care-coordinator", "America/Chicago", "Care coordinator"
    ),
    StaffSpec("lead", "Lena", "Park", "RN, MSN", "team-lead", "America/New_York"),
    StaffSpec("designer", "Devin", "Shah", "", "designer", "America/Los_Angeles"),
    StaffSpec("admin", "Alex", "Morgan", "", "administrator", "America/New_York", is_admin=True),
    StaffSpec("maya.chen", "Maya", "Chen", "RN", "care-nurse", "America/New_York", "Nurse"),
    StaffSpec("omar.haddad", "Omar", "Haddad", "RN", "care-nurse", "America/Chicago", "Nurse"),
    StaffSpec("luis.ortega", "Luis", "Ortega", "RN", "care-nurse", "America/Chicago", "Nurse"),
    StaffSpec("hannah.weber", "Hannah", "Weber", "LPN", "care-nurse", "America/Denver", "Nurse"),
    StaffSpec("grace.kim", "Grace", "Kim", "NP", "care-nurse", "America/New_York", "Nurse practitioner"),
    StaffSpec(
        "samuel.okafor", "Samuel", "Okafor", "MD", "care-nurse", "America/New_York", "Primary care physician"
    ),
    StaffSpec("priya.raman", "Priya", "Raman", "MD", "care-nurse", "America/Chicago", "Cardiologist"),
    StaffSpec(
        "david.cohen", "David", "Cohen", "PA", "care-nurse", "America/Los_Angeles", "Physician assistant"
    ),
)
NURSE_USERNAMES = ("nurse", "maya.chen", "omar.haddad", "luis.ortega", "hannah.weber")
PROVIDER_USERNAMES = ("grace.kim", "samuel.okafor", "priya.raman", "david.cohen")
DEMO_LOGIN_USERNAMES = ("nurse", "coordinator", "lead", "designer", "admin")


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


def demo_logins() -> list[DemoLogin]:
    """The sign-ins shown after seeding (and wherever the demo is explained): one per demo role."""
    role_names = {role.key: role.name for role in ROLES}
    by_username = {spec.username: spec for spec in STAFF}
    return [
        DemoLogin(username, settings.DEMO_PASSWORD, role_names[by_username[username].role])
        for username in DEMO_LOGIN_USERNAMES
    ]


def existing_data() -> str | None:
    """Why the database does not count as empty for seeding, or ``None`` when it does."""
    if Patient.objects.exists():
        return "patients exist"
    if Communication.objects.exists():
        return "communications exist"
    if ConfigVersion.objects.exists():
        return "a Designer configuration exists"
    taken = User.objects.filter(username__in=[spec.username for spec in STAFF]).values_list(
        "username", flat=True
    )
    if taken:
        return "demo users exist: " + ", ".join(sorted(taken))
    return None


# --- Synthetic people and places -------------------------------------------------------------------------

REGIONS = (
    ("east", "East Coast", ("NY", "NJ", "PA", "MA", "CT"), "America/New_York"),
    ("central", "Central", ("IL", "WI", "MN", "MO", "IA"), "America/Chicago"),
)
OTHER_TIME_ZONES = ("America/Denver", "America/Phoenix", "America/Los_Angeles", "Pacific/Honolulu")
LANGUAGES = (("en", 80), ("es", 12), ("zh", 2), ("vi", 2), ("fr", 1), ("ht", 1), ("ru", 1), ("ar", 1))
NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Elizabeth": "Liz",
    "Katherine": "Kate",
    "Michael": "Mike",
    "Jennifer": "Jen",
    "Christopher": "Chris",
    "Margaret": "Peggy",
    "James": "Jim",
    "Patricia": "Pat",
    "Alejandro": "Alex",
    "Guadalupe": "Lupe",
}
EMAIL_DOMAINS = ("mail.example", "inbox.example", "example.com", "webmail.example")
UNKNOWN_EMAIL_DOMAINS = ("mailbox.example", "post.example")  # used by nobody on file, so they match nobody
CHILD_CONTACTS = {"female": "mother", "male": "father"}
ADULT_RELATIONSHIPS = ("spouse", "daughter", "son", "caregiver", "sister", "brother", "friend")


def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters only ("Muñoz-O'Neil" → "munozoneil"), for synthetic email local parts."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def phone(number: int) -> str:
    """A synthetic E.164 number: +1 555 followed by seven digits."""
    return f"+1555{number:07d}"


# Disjoint number ranges, so a sender matches exactly the people meant to share it.
LINE_NUMBERS = {"main": 100_100, "cardiology": 100_200, "unlabeled": 100_300, "direct": 100_400}
MOBILE_RANGE = (1_000_000, 4_000_000)
HOUSEHOLD_PHONE_BASE = 4_000_000
CONTACT_PHONE_BASE = 5_000_000
UNKNOWN_PHONE_RANGE = (7_000_000, 10_000_000)


# --- Conversation text -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    subject: str
    opener_in: tuple[str, ...]
    opener_out: tuple[str, ...]
    reply_out: tuple[str, ...]
    reply_in: tuple[str, ...]


TOPICS = (
    Topic(
        "Prescription refill",
        (
            "I'm almost out of my {med}. Could you send a refill to {pharmacy}?",
            "My {med} prescription ran out yesterday. Can {provider} renew it?",
            "Could I get a refill on {med}? I have about three pills left.",
            "The pharmacy says my {med} needs a new prescription from {provider}. Can you help?",
        ),
        ("Our records show your {med} prescription is due for renewal. Should we send it to {pharmacy}?",),
        (
            "Thanks, {first}. I've sent the refill request for your {med} to {provider}; it should be ready at "
            "{pharmacy} within 24 hours.",
            "{provider} approved the refill. {pharmacy} will text you when it's ready for pickup.",
            "Are you still taking {med} once a day, or did the dose change at your last visit?",
            "I see your last refill was in {month}. I've flagged this for {provider} to review today.",
        ),
        (
            "Yes, still once a day in the morning.",
            "Will it be covered by my insurance like last time?",
            "Can you make it a 90-day supply this time?",
            "I picked it up, thank you.",
        ),
    ),
    Topic(
        "Rescheduling my appointment",
        (
            "I need to reschedule my appointment on {day}. Is anything open later in the week?",
            "Can I book a follow-up with {provider}? Mornings work best for me.",
            "I'm running about 15 minutes late for my {time} appointment today, sorry!",
            "Is my appointment on {day} in person or by video?",
        ),
        (
            "This is a reminder of your appointment with {provider} on {day} at {time}. Reply C to confirm or "
            "let us know if you need to reschedule.",
        ),
        (
            "No problem, {first}. I can move you to {day} at {time} with {provider}. Does that work?",
            "You're all set for {day} at {time}. Please arrive 10 minutes early to check in.",
            "It's a telehealth visit; you'll get a link by email an hour before.",
            "Thanks for letting us know, we'll hold your spot.",
        ),
        (
            "{day} at {time} works, thank you.",
            "Do I need to fast before the visit?",
            "Can my daughter come with me?",
        ),
    ),
    Topic(
        "Question about my lab results",
        (
            "I saw new lab results in my portal. Is my {lab} okay?",
            "When will my blood work from last week be back?",
            "Do I need to repeat the {lab} test before my next visit?",
        ),
        (
            "Your recent {lab} results are in and {provider} has reviewed them. Everything looks stable, so no "
            "changes to your plan for now.",
        ),
        (
            "{provider} reviewed your {lab}; it's slightly above the target range, so we'd like to recheck it "
            "in three months.",
            "Your results came back normal. {provider} will go over them with you at your next visit.",
            "The lab usually takes 3 to 5 business days. I'll message you as soon as they're in.",
            "Please don't eat after midnight before the repeat test; water is fine.",
        ),
        (
            "That's a relief, thanks.",
            "Should I change anything in my diet in the meantime?",
            "Can I get the results printed for my cardiologist?",
        ),
    ),
    Topic(
        "Blood pressure readings",
        (
            "My blood pressure this morning was {bp}. Should I be worried?",
            "I've been feeling dizzy when I stand up since starting the new {med}.",
            "My blood sugar was {glucose} before breakfast today.",
            "I've had a cough for about a week and now a low fever. Should I come in?",
        ),
        ("Just checking in: how have your blood pressure readings been this week?",),
        (
            "Thanks for sending that, {first}. Can you take it again after resting for five minutes and send "
            "me the reading?",
            "That reading is a little high. {provider} would like you to keep a log for a week and bring it to "
            "your next visit.",
            "If you have chest pain, shortness of breath or feel faint, please call 911 right away.",
            "I've let {provider} know. Let's get you in for a quick check on {day}.",
        ),
        (
            "Second reading was {bp}.",
            "No chest pain, just a bit tired.",
            "Okay, I'll start a log tonight.",
            "It's been better since I started drinking more water.",
        ),
    ),
    Topic(
        "Question about a bill",
        (
            "I got a bill for {amount} from my last visit. I thought it was covered by my insurance?",
            "Can I set up a payment plan for my balance?",
            "My insurance changed to {insurer} this month. What do you need from me?",
        ),
        ("We have an updated balance of {amount} on your account. Would you like to set up a payment plan?",),
        (
            "Thanks, {first}. I've asked our billing team to review the claim; they'll reach out within two "
            "business days.",
            "Please send a photo of the front and back of your new {insurer} card and we'll update your file.",
            "Yes, we offer payment plans. Billing will call you this week to set it up.",
        ),
        (
            "I'll send the photos tonight.",
            "Thanks, I appreciate it.",
            "What's the best number to reach billing?",
        ),
    ),
    Topic(
        "Form for work",
        (
            "I need a form filled out for my employer about my recent leave. Can {provider} sign it?",
            "Can you send my immunization records? My school needs them by {day}.",
            "I need a copy of my visit summary from {month}.",
        ),
        ("The form you asked about is ready. You can pick it up at the front desk or we can mail it.",),
        (
            "Sure. Please send the form over and {provider} will complete it within 3 business days.",
            "I've uploaded your records to the patient portal.",
            "We'll need a signed release for that. I'll send you the form.",
        ),
        (
            "Sent it just now.",
            "Got it, thank you!",
            "Does it need to be notarized?",
        ),
    ),
    Topic(
        "Checking in after your visit",
        ("I had a question about the instructions from my visit on {day}.",),
        (
            "Just checking in after your visit with {provider}. How are you feeling?",
            "We saw you were recently discharged from the hospital. How is your recovery going? Do you have "
            "everything you need?",
        ),
        (
            "Glad to hear it. Keep taking {med} as prescribed and let us know if anything changes.",
            "I'll schedule a follow-up with {provider} in two weeks to see how you're doing.",
        ),
        (
            "Much better, thank you for checking in.",
            "Still a bit sore but improving every day.",
            "I'm not sure I understood the new medication schedule.",
        ),
    ),
)
MID_OUT = (
    "Let me check with {provider} and get back to you today.",
    "Can you confirm your date of birth for our records?",
    "I've added a note to your chart.",
    "Thanks for the update. Anything else I can help with?",
)
MID_IN = (
    "Okay, thank you.",
    "Sorry, one more question: should I take it with food?",
    "What time do you open tomorrow?",
    "Sounds good.",
)
FOLLOW_UP_IN = (
    "Also, I forgot to mention I'm out of town next week.",
    "Just following up on my message above.",
    "Sorry, I meant {day}.",
)
FOLLOW_UP_OUT = (
    "Following up on my last message: please let us know when you have a moment.",
    "One more thing: please bring your medication list to your next visit.",
)
CLOSE_IN = (
    "Thank you so much!",
    "Great, thanks for your help.",
    "Perfect, see you then.",
    "Got it, thanks!",
    "Thanks, have a good day.",
)
CLOSE_OUT = (
    "You're welcome, {first}. Let us know if anything else comes up.",
    "Glad we could help. Take care!",
    "Anytime. We'll see you on {day}.",
    "Sounds good. I'll close this conversation for now; just reply here if you need anything.",
)
UNKNOWN_SMS = (
    "Hi, is this the clinic? I'd like to make an appointment for my dad.",
    "Wrong number? I got a missed call from this number.",
    "This is {pharmacy}. We received a prescription with a date of birth that doesn't match. Please call us.",
    "Hello, I'm a new patient. Do you accept {insurer}?",
    "Can someone call me back about my bill? Account ending {account}.",
    "Is the clinic open on Saturday?",
    "Hi it's {u_first} {u_last}, I have a new phone number. Please update my file.",
)
UNKNOWN_EMAIL = (
    (
        "New patient question",
        "I'm looking for a new primary care provider. Are you accepting new patients, and do you take {insurer}?",
    ),
    (
        "Changed my phone number",
        "This is {u_first} {u_last}. I have a new phone number and email address; please update my file.",
    ),
    (
        "Records request",
        "I'm writing on behalf of {u_first} {u_last}, who is transferring care to our office. Please send the "
        "last two years of records.",
    ),
    (
        "Question about my bill",
        "I received a statement for {amount} but I don't think I was seen at your clinic.",
    ),
)
PHARMACY_EMAIL = (
    "Prescription clarification",
    "We received an electronic prescription for {med} without a quantity. Please call the pharmacy to clarify.",
)
HOUSEHOLD_SMS = (
    "Hi, this is {hh_first}. Can we move our family's appointments next week to the afternoon?",
    "This is {hh_first} {hh_last}. I need a copy of my vaccination record for work.",
    "Hello, it's the {hh_last} family. Is the flu shot clinic still running this month?",
    "Hi, {hh_first} here. I'm out of my blood pressure pills, can you help?",
    "Can the doctor call us back about the lab results? Thank you, {hh_first}",
)
HOUSEHOLD_EMAIL = (
    ("Family appointments", "Can we book back-to-back check-ups for the whole family next month?"),
    ("Vaccination record", "I need a copy of my vaccination record for work. Thank you, {hh_first}."),
    ("Flu shots", "Is the flu shot clinic still running? We would like to come in as a family."),
)
UNRECOGNIZED_FOLLOW_UP = "Just following up on my message below. Could someone get back to me?"

MEDS = (
    "lisinopril 10 mg",
    "metformin 500 mg",
    "atorvastatin 20 mg",
    "levothyroxine 50 mcg",
    "amlodipine 5 mg",
    "albuterol inhaler",
    "sertraline 50 mg",
    "losartan 50 mg",
    "omeprazole 20 mg",
    "metoprolol 25 mg",
)
PHARMACIES = (
    "Lakeside Pharmacy",
    "Elm Street Pharmacy",
    "Riverside Drug",
    "Harbor Pharmacy",
    "Maple Apothecary",
    "Cedar Grove Pharmacy",
)
LABS = ("A1C", "cholesterol panel", "TSH", "potassium", "kidney function panel", "CBC", "vitamin D")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "tomorrow")
TIMES = ("8:30 AM", "9:15 AM", "10:00 AM", "11:30 AM", "1:45 PM", "2:30 PM", "3:15 PM", "4:00 PM")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
INSURERS = ("Blue Harbor Health", "Summit Mutual", "Evergreen Care Plan", "Medicare", "Medicaid")
EMAIL_GREETINGS = ("Hello,", "Hi,", "Good morning,", "Hi there,")
EMAIL_SIGN_OFFS = ("Thanks,", "Thank you,", "Best,", "Regards,")
SMS_FAILURES = (
    (Message.DeliveryStatus.UNDELIVERED, "30003 Unreachable destination handset"),
    (Message.DeliveryStatus.FAILED, "30005 Unknown destination handset"),
)

ENCOUNTER_KINDS = (
    (Encounter.Type.OFFICE_VISIT, "Annual wellness visit", 45),
    (Encounter.Type.OFFICE_VISIT, "Follow-up visit", 30),
    (Encounter.Type.OFFICE_VISIT, "Blood pressure check", 15),
    (Encounter.Type.TELEHEALTH, "Telehealth check-in", 20),
    (Encounter.Type.TELEHEALTH, "Medication review", 30),
    (Encounter.Type.PHONE_CALL, "Post-discharge call", 15),
    (Encounter.Type.HOME_VISIT, "Home health visit", 60),
)
DOCUMENT_KINDS = (
    ("lab-results.pdf", "application/pdf", "Lab results"),
    ("visit-summary.pdf", "application/pdf", "Visit summary"),
    ("immunization-record.pdf", "application/pdf", "Immunization record"),
    ("care-plan.txt", "text/plain", "Care plan"),
    ("blood-pressure-log.csv", "text/csv", "Blood pressure log"),
)


def tiny_pdf(text: str) -> bytes:
    """A valid one-page PDF showing one line of ASCII text (a few hundred bytes)."""
    safe = ascii_text(text).replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 720 Td ({safe}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def ascii_text(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def email_html(text: str) -> str:
    """Sanitised-looking HTML for an email body: paragraphs, line breaks, everything escaped."""
    escaped = html.escape(text).replace("\n\n", "</p><p>").replace("\n", "<br>")
    return f"<p>{escaped}</p>"


# --- Writing rows in bulk --------------------------------------------------------------------------------


class Progress:
    """Work done out of a total, for one step: tqdm's bar on a terminal; elsewhere (a log file, a pipe, CI) a plain
    line such as ``Communications: 250,000 / 1,000,000 (25 %) 41 s`` at every further tenth of the work (at most one
    a second), at least every PROGRESS_SECONDS (from a timer thread, so a long single statement such as building an
    index still shows the step is alive), and one at the end."""

    def __init__(self, label: str, total: int, file=None):
        self.file = file if file is not None else sys.stderr
        self.label, self.total, self.done = label, max(total, 0), 0
        self.started = self.last_line = time.monotonic()
        self.next_count = self.tenth(1)
        self.ended = False
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.timer: threading.Thread | None = None
        isatty = getattr(self.file, "isatty", None)
        self.bar = tqdm(total=total, desc=label, file=self.file) if isatty and isatty() else None
        if self.bar is None:
            self.timer = threading.Thread(target=self.beat, name=f"progress: {label}", daemon=True)
            self.timer.start()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close(completed=exc_info[0] is None)

    def tenth(self, tenths: int) -> int:
        return -(-self.total * tenths // 10)

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.done >= self.next_count:
            self.next_count = self.tenth(self.done * 10 // self.total + 1)
            if self.done >= self.total or time.monotonic() - self.last_line >= 1:
                self.line()

    def beat(self) -> None:
        while not self.stopped.wait(max(0.1, PROGRESS_SECONDS - (time.monotonic() - self.last_line))):
            if time.monotonic() - self.last_line >= PROGRESS_SECONDS:
                self.line()

    def close(self, *, completed: bool = True) -> None:
        self.stopped.set()
        if self.timer is not None:
            self.timer.join()
        if self.bar is not None:
            self.bar.close()
        elif completed and not self.ended:
            self.line()

    def line(self) -> None:
        with self.lock:
            now, done = time.monotonic(), self.done
            share = done / self.total if self.total else 1.0
            self.file.write(
                f"{self.label}: {done:,} / {self.total:,} ({share * 100:.0f} %) {now - self.started:.0f} s\n"
            )
            self.file.flush()
            self.last_line = now
            self.ended = done >= self.total


class Table:
    """How rows of one model are written: the ``given`` attributes, in that order, then every other column with the
    value a new instance would be saved with (its default; the write time for ``auto_now``/``auto_now_add``). A
    table's primary key is either given or left to the database."""

    def __init__(self, model, given: tuple[str, ...], now: dt.datetime):
        fields = {f.attname: f for f in model._meta.concrete_fields if not getattr(f, "generated", False)}
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise TypeError(f"Unknown {model.__name__} fields: {unknown}")
        rest = []
        for attname, f in fields.items():
            if attname in given or f.primary_key:
                continue
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value = now
            elif f.has_default() and callable(f.default):
                raise TypeError(f"{model.__name__}.{attname} has a computed default: give it")
            else:
                value = f.get_default()
            rest.append((attname, value.value if isinstance(value, enum.Enum) else value))
        self.model = model
        self.attnames = (*given, *(name for name, _value in rest))
        self.columns = tuple(fields[name].column for name in self.attnames)
        self.defaults = tuple(value for _name, value in rest)
        self.type_oids: list[int] | None = None  # PostgreSQL: the columns' types, read once

    def instances(self, rows: Iterable[tuple]):
        model, names, defaults = self.model, self.attnames, self.defaults
        return [model(**dict(zip(names, row + defaults, strict=True))) for row in rows]


FOREIGN_KEYS_SQL = """
    SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid)
    FROM pg_constraint c
    WHERE c.contype = 'f' AND c.conrelid = ANY (%s::text[]::regclass[])
    ORDER BY 1, 2
"""
# Indexes no constraint owns or refers to (primary keys and unique constraints stay): dropped before the load.
INDEXES_SQL = """
    SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i
    WHERE i.indrelid = ANY (%s::text[]::regclass[])
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    ORDER BY 1
"""


class Loader:
    """Writes the builder's rows as plain tuples: with COPY on PostgreSQL, with ``bulk_create`` elsewhere (SQLite:
    ``make run`` and the tests). Primary keys the build needs are assigned here from a reserved block of ids, so
    nothing is read back after an insert."""

    def __init__(self, connection, progress_file=None, log: Callable[[str], None] = lambda _msg: None):
        self.connection = connection
        self.postgres = connection.vendor == "postgresql"
        self.progress_file = progress_file
        self.log = log
        self.now = timezone.now()
        self.next_ids: dict[type, int] = {}

    def table(self, model, *given: str) -> Table:
        return Table(model, given, self.now)

    def tune(self) -> None:
        """PostgreSQL, for this transaction only: memory to build indexes in one pass, parallel index builds, and
        no wait for the (single) commit to reach the disk."""
        if not self.postgres:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
            cursor.execute(f"SET LOCAL max_parallel_maintenance_workers = {PARALLEL_MAINTENANCE_WORKERS}")

    def reserve(self, model, count: int) -> int:
        """The first of ``count`` consecutive new primary keys of ``model``. On PostgreSQL its sequence moves past
        them (the tables are locked, so nothing else takes one meanwhile); elsewhere they follow the largest id."""
        if self.postgres:
            if not count:
                return 0
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT setval(seq::regclass, nextval(seq::regclass) + %s - 1) "
                    "FROM pg_get_serial_sequence(%s, %s) AS seq",
                    [count, self.connection.ops.quote_name(model._meta.db_table), model._meta.pk.column],
                )
                last = cursor.fetchone()[0]
            return last - count + 1
        start = max(self.next_ids.get(model, 1), (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1)
        self.next_ids[model] = start + count
        return start

    @contextmanager
    def stream(self, table: Table) -> Iterator[Callable[[tuple], None]]:
        """A function that writes one row of ``table``. On PostgreSQL the rows go to one COPY as they are made (the
        server works through them while Python makes the next ones), so no other query may run until it ends."""
        if self.postgres:
            quote = self.connection.ops.quote_name
            db_table = table.model._meta.db_table
            columns = ", ".join(quote(column) for column in table.columns)
            sql = f"COPY {quote(db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"
            with self.connection.cursor() as cursor:
                if table.type_oids is None:  # binary COPY sends each value as its column's exact type
                    cursor.execute(
                        "SELECT attname, atttypid FROM pg_attribute "
                        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                        [quote(db_table)],
                    )
                    oids = dict(cursor.fetchall())
                    table.type_oids = [oids[column] for column in table.columns]
                with cursor.copy(sql) as copy:
                    copy.set_types(table.type_oids)
                    write, defaults = copy.write_row, table.defaults
                    yield (lambda row: write(row + defaults)) if defaults else write
            return
        rows: list[tuple] = []
        yield rows.append
        for start in range(0, len(rows), BATCH_SIZE):
            table.model.objects.bulk_create(table.instances(rows[start : start + BATCH_SIZE]))

    def write(self, table: Table, rows: Iterable[tuple]) -> None:
        with self.stream(table) as put:
            for row in rows:
                put(row)

    @contextmanager
    def indexes_deferred(self, models) -> Iterator[None]:
        """On PostgreSQL, drop the foreign keys and secondary indexes of the tables about to be filled and create
        them again from their definitions at the end: building an index once over millions of rows is several times
        faster than maintaining it row by row, and checking a foreign key once with a join is far faster than a
        deferred check per row at commit. Primary keys and unique constraints stay. All in the seed's transaction,
        so a failure leaves the schema as it was."""
        if not self.postgres:
            yield
            return
        tables = [model._meta.db_table for model in models]
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"LOCK TABLE {', '.join(map(self.connection.ops.quote_name, tables))} IN ACCESS EXCLUSIVE MODE"
            )
            # A table with deferred foreign-key checks still to run cannot lose a foreign key pointing at it: run
            # them now (they would run at commit anyway) and defer the (deferrable) checks again.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            cursor.execute(FOREIGN_KEYS_SQL, [tables])
            foreign_keys = cursor.fetchall()
            cursor.execute(INDEXES_SQL, [tables])
            indexes = cursor.fetchall()
            for table, name, _definition in foreign_keys:
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            for name, _definition in indexes:
                cursor.execute(f"DROP INDEX {name}")
        yield
        statements = [definition for _name, definition in indexes]
        statements += [
            f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
            for table, name, definition in foreign_keys
        ]
        statements.append(f"ANALYZE {', '.join(map(self.connection.ops.quote_name, tables))}")
        self.log(f"Building {len(indexes)} indexes and checking {len(foreign_keys)} foreign keys…")
        with (
            Progress("Indexes and keys", len(statements), self.progress_file) as progress,
            self.connection.cursor() as cursor,
        ):
            for statement in statements:
                cursor.execute(statement)
                progress.update()


# --- In-memory records used while building ---------------------------------------------------------------

PATIENT_COLUMNS = (
    "id",
    "mrn",
    "first_name",
    "last_name",
    "preferred_name",
    "birth_date",
    "sex",
    "gender_identity",
    "pronouns",
    "preferred_language",
    "time_zone",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "region_id",
)
CONTACT_COLUMNS = (
    "id",
    "patient_id",
    "first_name",
    "last_name",
    "relationship",
    "email",
    "phone",
    "is_opted_out",
)
COMMUNICATION_COLUMNS = (
    "id",
    "channel",
    "status",
    "patient_id",
    "contact_id",
    "sending_line_id",
    "inbound_address_id",
    "assignee_id",
    "subject",
    "counterpart",
    "is_unrecognized",
    "last_message_at",
    "last_message_preview",
    "last_message_direction",
    "opened_at",
    "closed_at",
    "created_at",
)
MESSAGE_COLUMNS = (
    "id",
    "communication_id",
    "direction",
    "author_id",
    "sender_name",
    "sender_address",
    "recipient_address",
    "subject",
    "body_text",
    "body_html",
    "is_secure",
    "email_message_id",
    "in_reply_to",
    "references",
    "provider",
    "provider_id",
    "delivery_status",
    "delivery_error",
    "created_at",
    "sent_at",
)


@dataclass(slots=True, eq=False)
class PatientRow:
    """A patient being built: the columns of its ``careportal_patient`` row and what the rest of the build needs."""

    index: int
    age: int
    first_name: str
    last_name: str
    preferred_name: str
    birth_date: dt.date
    sex: str
    gender_identity: str
    pronouns: str
    preferred_language: str
    time_zone: str
    address_line1: str
    address_line2: str
    city: str
    state: str
    postal_code: str
    region_id: int
    pk: int = 0  # assigned once every patient is built
    email: str = ""
    mobile: str = ""
    mobile_opted_out: bool = False
    household: "Household | None" = None
    contacts: list["ContactRow"] = field(default_factory=list)
    team: list[tuple[User, str, bool]] = field(default_factory=list)  # (user, team role, is primary contact)
    inbox_members: list[User] = field(default_factory=list)
    primary: User | None = None
    provider: User | None = None
    on_nurse_team: bool = False
    channel_options: list[tuple[str, str, "ContactRow | None"]] = field(default_factory=list)
    channel_weights: list[int] = field(default_factory=list)

    @property
    def first(self) -> str:
        return self.preferred_name or self.first_name

    def values(self) -> tuple:
        return (
            self.pk,
            f"MRN{self.index + 1:07d}",
            self.first_name,
            self.last_name,
            self.preferred_name,
            self.birth_date,
            self.sex,
            self.gender_identity,
            self.pronouns,
            self.preferred_language,
            self.time_zone,
            self.address_line1,
            self.address_line2,
            self.city,
            self.state,
            self.postal_code,
            self.region_id,
        )


@dataclass(slots=True, eq=False)
class ContactRow:
    """A patient's related contact being built (a ``careportal_contact`` row)."""

    patient_id: int
    first_name: str
    last_name: str
    relationship: str
    email: str
    phone: str
    is_opted_out: bool
    pk: int = 0  # assigned once every contact is built

    def values(self) -> tuple:
        return (
            self.pk,
            self.patient_id,
            self.first_name,
            self.last_name,
            self.relationship,
            self.email,
            self.phone,
            self.is_opted_out,
        )


@dataclass(slots=True, eq=False)
class Household:
    """Family members sharing an address, and a home phone and/or a family email: senders with candidates."""

    index: int
    members: list[PatientRow]
    phone: str = ""
    email: str = ""


@dataclass(slots=True, eq=False)
class CommSpec:
    """One communication to build: who writes, on which channel and line/address, and how many messages."""

    channel: str
    counterpart: str
    sender_name: str = ""
    patient: PatientRow | None = None
    contact: ContactRow | None = None
    household: Household | None = None
    candidates: tuple[PatientRow, ...] = ()
    line: SendingLine | None = None
    address: InboundAddress | None = None
    assignee: User | None = None
    messages: int = 1
    fixed_count: bool = False
    recent: bool = False
    unknown_text: tuple[str, str] | None = None  # (subject, body) from a sender who matches nobody
    stranger: tuple[str, str] = ("", "")  # that sender's first and last name

    @property
    def is_unrecognized(self) -> bool:
        return self.patient is None


RANDOM_PLACEHOLDERS: dict[str, Callable[[random.Random], object]] = {
    "med": lambda rng: rng.choice(MEDS),
    "pharmacy": lambda rng: rng.choice(PHARMACIES),
    "day": lambda rng: rng.choice(DAYS),
    "time": lambda rng: rng.choice(TIMES),
    "month": lambda rng: rng.choice(MONTHS),
    "lab": lambda rng: rng.choice(LABS),
    "bp": lambda rng: f"{rng.randint(118, 172)}/{rng.randint(72, 104)}",
    "glucose": lambda rng: rng.randint(95, 260),
    "amount": lambda rng: f"${rng.randint(25, 480)}.{rng.choice(('00', '25', '50', '75'))}",
    "insurer": lambda rng: rng.choice(INSURERS),
    "account": lambda rng: rng.randint(1000, 9999),
}


class Placeholders(dict):
    """The values one conversation's texts are filled with. The random ones are drawn the first time a text asks
    for one (a text uses one or two), so a conversation pays only for what it shows, and a value asked for twice
    (the same day in a question and its answer) is the same."""

    __slots__ = ("rng",)

    def __missing__(self, key: str):
        value = self[key] = RANDOM_PLACEHOLDERS[key](self.rng)
        return value


# uuid.UUID(int=n, version=4).hex without building a UUID: the version and variant bits set in a random integer.
UUID4_MASK = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
UUID4_BITS = (0x8000 << 48) | (4 << 76)


# --- The builder -----------------------------------------------------------------------------------------


class DemoBuilder:
    def __init__(
        self,
        *,
        patients: int,
        communications: int,
        seed: int,
        progress_file=None,
        log: Callable[[str], None] = lambda _msg: None,
    ):
        self.patient_count = patients
        self.communication_count = communications
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.fake_es = Faker("es_MX")
        self.fake_es.seed_instance(seed + 1)
        self.progress_file = progress_file
        self.log = log
        self.now = timezone.now().replace(microsecond=0)
        self.counts: dict[str, int] = {}
        self.zones: dict[str, ZoneInfo] = {}

    # -- orchestration

    def build(self) -> dict[str, int]:
        """Everything in one transaction: a failure leaves the database as it was."""
        with transaction.atomic():
            self.loader = Loader(connection, self.progress_file, self.log)
            self.loader.tune()
            with self.loader.indexes_deferred(BULK_MODELS):
                self.build_staff()
                self.build_configuration()
                self.build_lines_and_addresses()
                self.log(
                    f"Creating {self.patient_count:,} patients with contacts, care teams and encounters…"
                )
                with self.step("Patients") as progress:
                    self.build_patients(progress)
                with self.step("Contact methods and contacts") as progress:
                    self.build_contact_methods_and_contacts(progress)
                with self.step("Care teams") as progress:
                    self.build_care_teams(progress)
                with self.step("Encounters") as progress:
                    self.build_encounters(progress)
                self.build_documents()
                self.log(f"Creating {self.communication_count:,} communications…")
                self.build_communications()
        return self.counts

    def step(self, label: str, total: int | None = None) -> Progress:
        """Progress over the patients (or ``total`` things) for one step of the build."""
        return Progress(label, self.patient_count if total is None else total, self.progress_file)

    def zone(self, name: str) -> ZoneInfo:
        if name not in self.zones:
            self.zones[name] = ZoneInfo(name)
        return self.zones[name]

    # -- staff, configuration, lines

    def build_staff(self) -> None:
        self.regions = [Region.objects.create(code=code, name=name) for code, name, _states, _tz in REGIONS]
        password = make_password(settings.DEMO_PASSWORD)  # hashed once: hashing is deliberately slow
        self.users: dict[str, User] = {}
        for spec in STAFF:
            user = User.objects.create(
                username=spec.username,
                password=password,
                first_name=spec.first_name,
                last_name=spec.last_name,
                email=f"{spec.username}@{STAFF_EMAIL_DOMAIN}",
                role=spec.role,
                title=spec.title,
                time_zone=spec.time_zone,
                is_staff=spec.is_admin,
                is_superuser=spec.is_admin,
            )
            self.users[spec.username] = user
        UserRegion = User.regions.through
        memberships = [
            UserRegion(user_id=self.users[name].pk, region_id=region.pk)
            for index, name in enumerate(NURSE_USERNAMES + PROVIDER_USERNAMES + ("coordinator",))
            for region in (self.regions if name == "nurse" else [self.regions[index % 2]])
        ]
        UserRegion.objects.bulk_create(memberships)
        self.nurse = self.users["nurse"]
        self.lead = self.users["lead"]
        self.nurses = [self.users[name] for name in NURSE_USERNAMES]
        self.providers = [self.users[name] for name in PROVIDER_USERNAMES]
        self.team_roles = {self.users[s.username].pk: s.team_role for s in STAFF}
        self.titles = {self.users[s.username].pk: s.title for s in STAFF}
        self.inbox_staff = [*self.nurses, *self.providers, self.lead]
        self.teams = [(self.nurses, self.providers)]
        self.build_more_teams(password)
        self.all_inbox_staff = [*self.inbox_staff, *(u for n, p in self.teams[1:] for u in (*n, *p))]
        self.team0_share = min(1.0, TEAM_PATIENTS / max(1, self.patient_count))
        self.counts["users"] = len(self.users)

    def build_more_teams(self, password: str) -> None:
        """One generated team (nurses and providers) per TEAM_PATIENTS patients beyond the first team's."""
        extra = max(0, -(-self.patient_count // TEAM_PATIENTS) - 1)
        if not extra:
            return
        specs = []
        for team in range(1, extra + 1):
            for kind, count, title, team_role in (
                ("rn", TEAM_NURSES, "RN", "Nurse"),
                ("md", TEAM_PROVIDERS, "MD", "Primary care physician"),
            ):
                for number in range(1, count + 1):
                    first, last = self.fake.first_name(), self.fake.last_name()
                    specs.append((team, kind, f"t{team:03d}.{kind}{number}", first, last, title, team_role))
        users = User.objects.bulk_create(
            User(
                username=username,
                password=password,
                first_name=first,
                last_name=last,
                email=f"{username}@{STAFF_EMAIL_DOMAIN}",
                role="care-nurse",
                title=title,
                time_zone=REGIONS[team % len(REGIONS)][3],
            )
            for team, _kind, username, first, last, title, _team_role in specs
        )
        UserRegion = User.regions.through
        UserRegion.objects.bulk_create(
            UserRegion(user_id=user.pk, region_id=self.regions[spec[0] % len(self.regions)].pk)
            for user, spec in zip(users, specs, strict=True)
        )
        teams: dict[int, tuple[list, list]] = {}
        for user, (team, kind, username, _f, _l, title, team_role) in zip(users, specs, strict=True):
            self.users[username] = user
            self.team_roles[user.pk] = team_role
            self.titles[user.pk] = title
            teams.setdefault(team, ([], []))[0 if kind == "rn" else 1].append(user)
        self.teams += [teams[team] for team in sorted(teams)]

    def build_configuration(self) -> None:
        version = ConfigVersion.objects.create(
            number=1,
            status=ConfigVersion.Status.PUBLISHED,
            published_at=self.now,
            author=self.users["designer"],
            change_summary="Demo configuration: care-team roles, inbox policies and reply templates.",
        )
        for spec in ROLES:
            role = Role.objects.create(version=version, key=spec.key, name=spec.name)
            RoleMenuItem.objects.bulk_create(
                RoleMenuItem(role=role, item=item, position=position)
                for position, item in enumerate(spec.menu)
            )
            PolicyGrant.objects.bulk_create(PolicyGrant(role=role, policy=policy) for policy in spec.policies)
        MessageTemplate.objects.bulk_create(
            MessageTemplate(version=version, key=key, name=name, channel=channel, subject=subject, body=body)
            for key, name, channel, subject, body in TEMPLATES
        )

    def build_lines_and_addresses(self) -> None:
        def line(key: str, label: str, owner: User | None = None) -> SendingLine:
            return SendingLine.objects.create(number=phone(LINE_NUMBERS[key]), label=label, owner=owner)

        self.main_line = line("main", "Main clinic")
        self.cardiology_line = line("cardiology", "Cardiology")
        self.unlabeled_line = line("unlabeled", "")
        self.direct_line = line("direct", "Nora Diaz (direct)", owner=self.nurse)
        self.care_address = InboundAddress.objects.create(
            address=f"care@{STAFF_EMAIL_DOMAIN}", label="Care team"
        )
        self.cardiology_address = InboundAddress.objects.create(
            address=f"cardiology@{STAFF_EMAIL_DOMAIN}", label="Cardiology"
        )
        self.alias_address = InboundAddress.objects.create(
            address=f"nora.diaz@{STAFF_EMAIL_DOMAIN}", label="Nora Diaz", owner=self.nurse
        )
        self.shared_lines = [self.main_line, self.cardiology_line, self.unlabeled_line]

    # -- patients

    def name_pools(self) -> None:
        fake, es = self.fake, self.fake_es
        self.pool = {
            ("en", "female"): [fake.first_name_female() for _ in range(400)],
            ("en", "male"): [fake.first_name_male() for _ in range(400)],
            ("en", "last"): [fake.last_name() for _ in range(800)],
            ("es", "female"): [es.first_name_female() for _ in range(150)],
            ("es", "male"): [es.first_name_male() for _ in range(150)],
            ("es", "last"): [es.last_name() for _ in range(300)],
        }
        self.streets = [fake.street_address() for _ in range(1000)]
        self.cities = [fake.city() for _ in range(300)]

    def first_name(self, language: str, sex: str) -> str:
        sex = sex if sex in ("female", "male") else self.rng.choice(("female", "male"))
        return self.rng.choice(self.pool[("es" if language == "es" else "en", sex)])

    def last_name(self, language: str) -> str:
        return self.rng.choice(self.pool[("es" if language == "es" else "en", "last")])

    def build_patients(self, progress: Progress) -> None:
        rng = self.rng
        self.name_pools()
        languages, language_weights = zip(*LANGUAGES, strict=True)
        mobiles = rng.sample(range(*MOBILE_RANGE), self.patient_count)
        today = self.now.date()
        self.rows: list[PatientRow] = []
        self.households: list[Household] = []
        index = 0
        while index < self.patient_count:
            size = 1
            if index == 0 and self.patient_count >= 3:
                size = 3  # the first family is the demo's showcase of a shared phone and email
            elif rng.random() < 0.06 and index + 3 <= self.patient_count:
                size = rng.choice((2, 2, 3))
            language = rng.choices(languages, language_weights)[0]
            region_at = rng.randrange(len(REGIONS))
            household_last = self.last_name(language)
            address = (rng.choice(self.streets), rng.choice(self.cities), rng.choice(REGIONS[region_at][2]))
            members = []
            for position in range(size):
                if size == 1:
                    age = rng.choices(
                        (rng.randint(1, 17), rng.randint(18, 64), rng.randint(65, 95)), (10, 55, 35)
                    )[0]
                    sex = rng.choice(("female", "male"))
                elif position < 2:
                    age = rng.randint(30, 70) if index > 0 else 41 + position * 3
                    sex = ("female", "male")[position] if rng.random() < 0.9 or index == 0 else "female"
                else:
                    age = rng.randint(3, 16) if index > 0 else 9
                    sex = rng.choice(("female", "male"))
                row = self.new_patient(
                    index + position,
                    age=age,
                    sex=sex,
                    language=language,
                    last_name=household_last if size > 1 and (position < 2 or rng.random() < 0.9) else None,
                    address=address if size > 1 else None,
                    region_at=region_at,
                    mobile=mobiles[index + position],
                    today=today,
                )
                members.append(row)
            if size > 1:
                household = Household(index=len(self.households), members=members)
                last = ascii_slug(members[0].last_name)
                household.phone = phone(HOUSEHOLD_PHONE_BASE + household.index) if rng.random() < 0.8 else ""
                if index == 0 or not household.phone or rng.random() < 0.5:
                    household.email = f"{last}.family{household.index}@example.com"
                for row in members:
                    row.household = household
                self.households.append(household)
            self.rows.extend(members)
            index += size
            progress.update(size)
        first_id = self.loader.reserve(Patient, len(self.rows))
        for offset, row in enumerate(self.rows):
            row.pk = first_id + offset
        self.loader.write(self.loader.table(Patient, *PATIENT_COLUMNS), (row.values() for row in self.rows))
        self.counts["patients"] = len(self.rows)
        self.counts["households"] = len(self.households)

    def new_patient(
        self,
        index: int,
        *,
        age: int,
        sex: str,
        language: str,
        last_name: str | None,
        address: tuple[str, str, str] | None,
        region_at: int,
        mobile: int,
        today: dt.date,
    ) -> PatientRow:
        rng = self.rng
        first = self.first_name(language, sex)
        last = last_name or self.last_name(language)
        street, city, state = address or (rng.choice(self.streets), rng.choice(self.cities), None)
        _code, _name, states, region_zone = REGIONS[region_at]
        # Born within the year before their ``age``-th birthday, so ``Patient.age()`` gives ``age`` today.
        birth_date = dt.date(today.year - age, today.month, min(today.day, 28)) - dt.timedelta(
            days=rng.randrange(1, 360)
        )
        pronouns, gender_identity = "", ""
        if rng.random() < 0.02:
            sex, gender_identity, pronouns = Patient.Sex.UNKNOWN, "Non-binary", "they/them"
        elif rng.random() < 0.4:
            pronouns = {"female": "she/her", "male": "he/him"}[sex]
        row = PatientRow(
            index=index,
            age=age,
            first_name=first,
            last_name=last,
            preferred_name=NICKNAMES[first] if first in NICKNAMES and rng.random() < 0.5 else "",
            birth_date=birth_date,
            sex=sex,
            gender_identity=gender_identity,
            pronouns=pronouns,
            preferred_language=language,
            time_zone=region_zone if rng.random() < 0.9 else rng.choice(OTHER_TIME_ZONES),
            address_line1=street,
            address_line2=f"Apt {rng.randint(1, 40)}{rng.choice('ABCD')}" if rng.random() < 0.2 else "",
            city=city,
            state=state or rng.choice(states),
            postal_code=f"{rng.randint(1000, 99999):05d}",
            region_id=self.regions[region_at].pk,
        )
        has_own = age >= 18 or (age >= 13 and rng.random() < 0.6)
        if has_own:
            local = ascii_slug(first), ascii_slug(last)
            style = rng.randrange(3)
            name = (f"{local[0]}.{local[1]}", f"{local[0][:1]}{local[1]}", f"{local[0]}")[style]
            if rng.random() < 0.93 or index == 0:
                row.email = f"{name}{index + 1}@{rng.choice(EMAIL_DOMAINS)}"
            if rng.random() < 0.95 or not row.email:
                row.mobile = phone(mobile)
                row.mobile_opted_out = index > 2 and rng.random() < 0.02
        return row

    def build_contact_methods_and_contacts(self, progress: Progress) -> None:
        rng = self.rng
        contacts: list[ContactRow] = []
        methods = 0
        table = self.loader.table(
            PatientContactMethod,
            "patient_id",
            "kind",
            "value",
            "label",
            "is_primary",
            "is_verified",
            "is_opted_out",
        )
        email, phone_kind = ContactKind.EMAIL.value, ContactKind.PHONE.value
        with self.loader.stream(table) as put:
            for row in self.rows:
                pid = row.pk
                if row.email:
                    put((pid, email, row.email, "personal", True, rng.random() < 0.8, False))
                    methods += 1
                if row.mobile:
                    put(
                        (
                            pid,
                            phone_kind,
                            row.mobile,
                            "mobile",
                            True,
                            rng.random() < 0.8,
                            row.mobile_opted_out,
                        )
                    )
                    methods += 1
                household = row.household
                if household and household.phone:
                    put((pid, phone_kind, household.phone, "home", not row.mobile, False, False))
                    methods += 1
                if household and household.email:
                    put((pid, email, household.email, "family", not row.email, False, False))
                    methods += 1
                wants_contact = (
                    row.age < 18 or rng.random() < (0.4 if row.age >= 70 else 0.12) or row.index == 2
                )
                if wants_contact:
                    contacts.append(self.new_contact(row, len(contacts)))
                progress.update()
        first_id = self.loader.reserve(Contact, len(contacts))
        for offset, contact in enumerate(contacts):
            contact.pk = first_id + offset
        self.loader.write(self.loader.table(Contact, *CONTACT_COLUMNS), (c.values() for c in contacts))
        self.counts["contact_methods"] = methods
        self.counts["contacts"] = len(contacts)

    def new_contact(self, row: PatientRow, index: int) -> ContactRow:
        rng = self.rng
        language = row.preferred_language
        adults = [m for m in (row.household.members if row.household else []) if m.age >= 18 and m is not row]
        if row.age < 18 and adults:
            parent = adults[0]
            first, last, relationship = (
                parent.first_name,
                parent.last_name,
                CHILD_CONTACTS.get(parent.sex, "parent"),
            )
        elif row.age < 18:
            sex = rng.choice(("female", "male"))
            first, last, relationship = self.first_name(language, sex), row.last_name, CHILD_CONTACTS[sex]
        else:
            relationship = rng.choice(ADULT_RELATIONSHIPS)
            first = self.first_name(language, rng.choice(("female", "male")))
            last = (
                row.last_name if relationship != "friend" and rng.random() < 0.7 else self.last_name(language)
            )
        email = ""
        if rng.random() < 0.6:
            email = f"{ascii_slug(first)}.{ascii_slug(last)}.c{index + 1}@{rng.choice(EMAIL_DOMAINS)}"
        contact_phone = phone(CONTACT_PHONE_BASE + index) if rng.random() < 0.9 or not email else ""
        contact = ContactRow(
            patient_id=row.pk,
            first_name=first,
            last_name=last,
            relationship=relationship,
            email=email,
            phone=contact_phone,
            is_opted_out=bool(contact_phone) and rng.random() < 0.02,
        )
        row.contacts.append(contact)
        return contact

    def build_care_teams(self, progress: Progress) -> None:
        """Most patients have a care team with exactly one primary contact; Nora Diaz is on a third of them."""
        rng = self.rng
        coordinator = self.users["coordinator"]
        members = 0
        table = self.loader.table(CareTeamMember, "patient_id", "user_id", "team_role", "is_primary_contact")
        with self.loader.stream(table) as put:
            for row in self.rows:
                showcase = row.index < 3
                progress.update()
                if not showcase and rng.random() < 0.03:
                    continue  # no care team: visible only to Inbox Full Patient
                if row.index >= TEAM_PATIENTS:
                    self.add_generated_team(row)
                else:
                    nurse = self.nurse if showcase or rng.random() < 0.33 else rng.choice(self.nurses[1:])
                    provider = rng.choice(self.providers)
                    team = [(nurse, True), (provider, False)]
                    if nurse is not self.nurse and rng.random() < 0.08:
                        team.append((self.nurse, False))
                    if rng.random() < 0.3:
                        team.append((coordinator, False))
                    if not showcase and rng.random() < 0.1:  # sometimes the provider is the primary contact
                        team = [(user, user is provider) for user, _primary in team]
                    for user, is_primary in team:
                        row.team.append((user, self.team_roles[user.pk], is_primary))
                        if is_primary:
                            row.primary = user
                    row.provider = provider
                    row.inbox_members = [
                        user for user, _role, _primary in row.team if user is not coordinator
                    ]
                    row.on_nurse_team = any(user is self.nurse for user, _r, _p in row.team)
                for user, role, is_primary in row.team:
                    put((row.pk, user.pk, role, is_primary))
                    members += 1
        self.counts["care_team_members"] = members

    def add_generated_team(self, row: PatientRow) -> None:
        """A care team from the patient's generated team: one of its nurses (primary) and one of its providers."""
        nurses, providers = self.teams[min(row.index // TEAM_PATIENTS, len(self.teams) - 1)]
        nurse, provider = self.rng.choice(nurses), self.rng.choice(providers)
        row.team = [(nurse, self.team_roles[nurse.pk], True), (provider, self.team_roles[provider.pk], False)]
        row.primary, row.provider = nurse, provider
        row.inbox_members = [nurse, provider]
        row.on_nurse_team = False

    def build_encounters(self, progress: Progress) -> None:
        rng = self.rng
        statuses = (Encounter.Status.COMPLETED,) * 8 + (Encounter.Status.CANCELLED, Encounter.Status.NO_SHOW)
        scheduled = Encounter.Status.SCHEDULED
        count = 0
        table = self.loader.table(
            Encounter,
            "patient_id",
            "encounter_type",
            "title",
            "starts_at",
            "ends_at",
            "status",
            "provider_id",
            "location",
        )
        with self.loader.stream(table) as put:
            for row in self.rows:
                progress.update()
                zone = self.zone(row.time_zone)
                past, upcoming = rng.choice((0, 1, 2, 2, 3, 4)), rng.choice((0, 1, 1, 2))
                for days in [-rng.randint(3, 400) for _ in range(past)] + [
                    rng.randint(1, 60) for _ in range(upcoming)
                ]:
                    kind, title, minutes = rng.choice(ENCOUNTER_KINDS)
                    day = (self.now + dt.timedelta(days=days)).astimezone(zone).date()
                    local = dt.datetime.combine(
                        day, dt.time(rng.randint(8, 16), rng.choice((0, 15, 30, 45))), zone
                    )
                    starts_at = local.astimezone(dt.UTC)
                    location = {
                        Encounter.Type.OFFICE_VISIT: "Main clinic",
                        Encounter.Type.TELEHEALTH: "Video visit",
                        Encounter.Type.PHONE_CALL: "Phone",
                        Encounter.Type.HOME_VISIT: f"{row.address_line1}, {row.city}",
                    }[kind]
                    put(
                        (
                            row.pk,
                            kind,
                            title,
                            starts_at,
                            starts_at + dt.timedelta(minutes=minutes),
                            rng.choice(statuses) if days < 0 else scheduled,
                            (row.provider or rng.choice(self.providers)).pk,
                            location,
                        )
                    )
                    count += 1
        self.counts["encounters"] = count

    def build_documents(self) -> None:
        """A tiny real file (written through Django storage) or two for the first patients only."""
        rng = self.rng
        documents: list[Document] = []
        self.pending_documents: dict[int, list[Document]] = {}
        for row in self.rows[:DOCUMENT_PATIENTS]:
            for filename, content_type, title in rng.sample(DOCUMENT_KINDS, rng.randint(1, 2)):
                heading = f"{title} for {row.first_name} {row.last_name} (synthetic demo document)"
                if content_type == "application/pdf":
                    data = tiny_pdf(heading)
                elif content_type == "text/csv":
                    readings = "".join(
                        f"2025-0{day % 9 + 1}-1{day},{rng.randint(112, 160)},{rng.randint(70, 98)}\n"
                        for day in range(5)
                    )
                    data = f"# {ascii_text(heading)}\ndate,systolic,diastolic\n{readings}".encode()
                else:
                    data = f"{ascii_text(heading)}\n\nGoals: walk 20 minutes a day; check blood pressure daily.\n".encode()
                document = Document(
                    patient_id=row.pk,
                    name=filename,
                    content_type=content_type,
                    size=len(data),
                    uploaded_by=row.primary if rng.random() < 0.7 else None,
                )
                document.file.save(filename, ContentFile(data), save=False)
                documents.append(document)
        Document.objects.bulk_create(documents)
        for document in documents:
            self.pending_documents.setdefault(document.patient_id, []).append(document)
        self.counts["documents"] = len(documents)

    # -- communications: plan every one first (cheap), then build and write them batch by batch

    def build_communications(self) -> None:
        for row in self.rows:
            self.prepare_channel_options(row)
        self.used_sms_lines: set[tuple[int, int]] = set()
        self.unknown_phones = [
            phone(n)
            for n in self.rng.sample(range(*UNKNOWN_PHONE_RANGE), max(20, self.communication_count // 25))
        ]
        self.unknown_people = [self.unknown_person() for _ in range(max(20, self.communication_count // 25))]
        specs = self.showcase_specs()[: self.communication_count]
        with self.step("Planning communications", self.communication_count) as progress:
            progress.update(len(specs))
            while len(specs) < self.communication_count:
                specs.append(self.random_spec())
                progress.update()
            self.set_message_counts(specs)
        self.provider_labels = {
            user.pk: f"Dr. {user.last_name}" if user.title == "MD" else f"{user.full_name}, {user.title}"
            for user in self.users.values()
        }
        self.signatures = {
            user.pk: f"{user.full_name}, {user.title}" if user.title else user.full_name
            for user in self.users.values()
        }

        loader = self.loader
        communications = loader.table(Communication, *COMMUNICATION_COLUMNS)
        messages = loader.table(Message, *MESSAGE_COLUMNS)
        candidates = loader.table(Communication.candidate_patients.through, "communication_id", "patient_id")
        attachments_table = loader.table(
            Attachment, "message_id", "document_id", "filename", "content_type", "size", "created_at"
        )
        communication_id = loader.reserve(Communication, len(specs))
        message_id = loader.reserve(Message, sum(spec.messages for spec in specs))
        self.counts.update(communications=0, messages=0, unrecognized=0, candidate_links=0, attachments=0)
        batch_size = COPY_BATCH if loader.postgres else BATCH_SIZE
        with self.step("Communications", len(specs)) as progress:
            for start in range(0, len(specs), batch_size):
                batch = specs[start : start + batch_size]
                rows: list[tuple] = []
                attachments: list[tuple[int, dt.datetime, Document]] = []
                # The messages stream to the server while their conversations are made; the batch's
                # communications, candidate links and attachments follow.
                with loader.stream(messages) as put_message:
                    for spec in batch:
                        rows.append(
                            self.conversation(spec, communication_id, message_id, put_message, attachments)
                        )
                        communication_id += 1
                        message_id += spec.messages
                loader.write(communications, rows)
                links = [
                    (row[0], patient.pk)
                    for spec, row in zip(batch, rows, strict=True)
                    for patient in spec.candidates
                ]
                loader.write(candidates, links)
                loader.write(
                    attachments_table,
                    (
                        (at, document.pk, document.name, document.content_type, document.size, created_at)
                        for at, created_at, document in attachments
                    ),
                )
                self.counts["communications"] += len(batch)
                self.counts["messages"] += sum(spec.messages for spec in batch)
                self.counts["unrecognized"] += sum(spec.is_unrecognized for spec in batch)
                self.counts["candidate_links"] += len(links)
                self.counts["attachments"] += len(attachments)
                progress.update(len(batch))

    def prepare_channel_options(self, row: PatientRow) -> None:
        options: list[tuple[str, str, ContactRow | None]] = []
        weights: list[int] = []

        def add(weight: int, channel: str, counterpart: str, contact: ContactRow | None = None) -> None:
            options.append((channel, counterpart, contact))
            weights.append(weight)

        if row.mobile and not row.mobile_opted_out:
            add(40, Channel.SMS, row.mobile)
        if row.email:
            add(30, Channel.EMAIL, row.email)
            add(10, Channel.SECURE_EMAIL, row.email)
            add(18, Channel.CHAT, row.email)
        for contact in row.contacts:
            if contact.phone and not contact.is_opted_out:
                add(12 if row.age < 18 else 6, Channel.SMS, contact.phone, contact)
            if contact.email:
                add(10 if row.age < 18 else 4, Channel.EMAIL, contact.email, contact)
        row.channel_options, row.channel_weights = options, weights

    def unknown_person(self) -> tuple[str, str, str]:
        first = self.first_name("en", self.rng.choice(("female", "male")))
        last = self.last_name("en")
        number = self.rng.randint(1, 9999)
        return (
            first,
            last,
            f"{ascii_slug(first)}{ascii_slug(last)[:1]}{number}@{self.rng.choice(UNKNOWN_EMAIL_DOMAINS)}",
        )

    def pick_line(self, row: PatientRow | None) -> SendingLine | None:
        """A sending line this patient has no SMS communication on yet (one communication per patient and line)."""
        rng = self.rng
        if row is None:
            return rng.choices(self.shared_lines, (70, 20, 10))[0]
        lines = [*self.shared_lines, self.direct_line] if row.on_nurse_team else self.shared_lines
        weights = (50, 15, 10, 25) if row.on_nurse_team else (60, 25, 15)
        free = [
            (line, w)
            for line, w in zip(lines, weights, strict=True)
            if (row.index, line.pk) not in self.used_sms_lines
        ]
        if not free:
            return None
        line = rng.choices([line for line, _w in free], [w for _line, w in free])[0]
        self.used_sms_lines.add((row.index, line.pk))
        return line

    def pick_address(self, row: PatientRow) -> InboundAddress:
        if row.on_nurse_team and self.rng.random() < 0.2:
            return self.alias_address
        return self.care_address if self.rng.random() < 0.75 else self.cardiology_address

    def recognized_assignee(self, row: PatientRow, spec: CommSpec) -> User | None:
        """Auto-assignment for the nurse's direct line and alias; otherwise someone who may see the patient, or nobody."""
        rng = self.rng
        if spec.line is self.direct_line or spec.address is self.alias_address:
            return self.nurse
        if not row.inbox_members:
            return self.lead if rng.random() < 0.4 else None
        roll = rng.random()
        if roll < 0.35 and row.primary is not None and row.primary in row.inbox_members:
            return row.primary
        if roll < 0.6:
            return rng.choice(row.inbox_members)
        return None

    def patient_spec(self, row: PatientRow) -> CommSpec | None:
        rng = self.rng
        options, weights = list(row.channel_options), list(row.channel_weights)
        while options:
            at = rng.choices(range(len(options)), weights)[0]
            channel, counterpart, contact = options[at]
            spec = CommSpec(channel=channel, counterpart=counterpart, patient=row, contact=contact)
            if channel == Channel.SMS:
                spec.line = self.pick_line(row)
                if spec.line is None:  # already texting on every line: pick another channel
                    del options[at], weights[at]
                    continue
            elif channel in EMAIL_CHANNELS:
                spec.address = self.pick_address(row)
            spec.sender_name = (
                f"{contact.first_name} {contact.last_name}"
                if contact
                else f"{row.first_name} {row.last_name}"
            )
            spec.assignee = self.recognized_assignee(row, spec)
            return spec
        return None

    def household_spec(self, household: Household, *, linked: bool) -> CommSpec | None:
        """A message from a family's shared phone or email: Unrecognized with every member as a candidate,
        or already linked by hand to one of them."""
        rng = self.rng
        channels = [
            c for c, value in ((Channel.SMS, household.phone), (Channel.EMAIL, household.email)) if value
        ]
        channel = rng.choice(channels)
        row = rng.choice(household.members) if linked else None
        spec = CommSpec(
            channel=channel,
            counterpart=household.phone if channel == Channel.SMS else household.email,
            patient=row,
            household=household,
            candidates=tuple(household.members),
        )
        if channel == Channel.SMS:
            spec.line = self.pick_line(row)
            if spec.line is None:
                return None
        else:
            spec.address = self.care_address if rng.random() < 0.8 else self.cardiology_address
        if row is not None:
            spec.sender_name = f"{row.first_name} {row.last_name}"
            spec.assignee = self.recognized_assignee(row, spec)
        else:
            spec.sender_name = (
                f"The {household.members[0].last_name} family" if channel == Channel.EMAIL else ""
            )
            spec.assignee = rng.choice(self.all_inbox_staff) if rng.random() < 0.15 else None
            spec.messages, spec.fixed_count = (1 if channel == Channel.SMS else rng.choice((1, 1, 2))), True
        return spec

    def unknown_spec(self, *, to_nurse: bool = False, channel: str | None = None) -> CommSpec:
        """A sender who matches nobody: Unrecognized with no candidates. Each of their SMS is its own communication."""
        rng = self.rng
        channel = channel or (Channel.SMS if rng.random() < 0.55 else Channel.EMAIL)
        to_nurse = to_nurse or rng.random() < 0.15 * self.team0_share
        first, last, email = rng.choice(self.unknown_people)
        spec = CommSpec(channel=channel, counterpart=email, stranger=(first, last), fixed_count=True)
        if channel == Channel.SMS:
            spec.counterpart = rng.choice(self.unknown_phones)
            spec.line = self.direct_line if to_nurse else self.pick_line(None)
            spec.unknown_text = ("", rng.choice(UNKNOWN_SMS))
        else:
            spec.sender_name = f"{first} {last}"
            spec.address = self.alias_address if to_nurse else self.care_address
            spec.unknown_text = rng.choice(UNKNOWN_EMAIL)
            if rng.random() < 0.25:
                pharmacy = rng.choice(PHARMACIES)
                spec.counterpart, spec.sender_name = f"rx@{ascii_slug(pharmacy)}.example", pharmacy
                spec.unknown_text = PHARMACY_EMAIL
            spec.messages = rng.choice((1, 1, 1, 2))
        spec.assignee = (
            self.nurse if to_nurse else (rng.choice(self.all_inbox_staff) if rng.random() < 0.15 else None)
        )
        return spec

    def random_spec(self) -> CommSpec:
        rng = self.rng
        for _attempt in range(20):
            roll = rng.random()
            if roll < 0.06 and self.households:
                spec = self.household_spec(rng.choice(self.households), linked=False)
            elif roll < 0.13:
                spec = self.unknown_spec()
            elif roll < 0.16 and self.households:
                spec = self.household_spec(rng.choice(self.households), linked=True)
            else:
                spec = self.patient_spec(rng.choice(self.rows))
            if spec is not None:
                return spec
        return self.unknown_spec()

    def showcase_specs(self) -> list[CommSpec]:
        """A few communications every demo has, fresh at the top of Nora Diaz's inbox: each channel, a contact,
        a family's shared number (several candidates) and strangers (no candidates, one on her direct line)."""
        first, second, child = self.rows[0], self.rows[1], self.rows[2]
        specs: list[CommSpec] = []

        def add(spec: CommSpec | None, messages: int, assignee: User | None) -> None:
            if spec is not None:
                spec.messages, spec.fixed_count, spec.recent, spec.assignee = messages, True, True, assignee
                specs.append(spec)

        def own(row: PatientRow, channel: str) -> CommSpec | None:
            counterpart = row.mobile if channel == Channel.SMS else row.email
            if not counterpart or (channel == Channel.SMS and row.mobile_opted_out):
                return None
            spec = CommSpec(
                channel=channel,
                counterpart=counterpart,
                sender_name=f"{row.first_name} {row.last_name}",
                patient=row,
            )
            if channel == Channel.SMS:
                spec.line = self.main_line
                self.used_sms_lines.add((row.index, self.main_line.pk))
            elif channel in EMAIL_CHANNELS:
                spec.address = self.care_address
            return spec

        add(own(first, Channel.SMS), 5, self.nurse)
        add(own(first, Channel.EMAIL), 4, None)
        add(own(second, Channel.SECURE_EMAIL) or own(first, Channel.SECURE_EMAIL), 3, self.nurse)
        add(own(second, Channel.CHAT) or own(first, Channel.CHAT), 6, None)
        contact = child.contacts[0] if child.contacts else None
        if contact is not None and contact.phone:
            self.used_sms_lines.add((child.index, self.cardiology_line.pk))
            add(
                CommSpec(
                    channel=Channel.SMS,
                    counterpart=contact.phone,
                    sender_name=f"{contact.first_name} {contact.last_name}",
                    patient=child,
                    contact=contact,
                    line=self.cardiology_line,
                ),
                4,
                self.nurse,
            )
        if first.household is not None:
            add(self.household_spec(first.household, linked=False), 1, None)
        add(self.unknown_spec(channel=Channel.EMAIL), 1, None)
        add(self.unknown_spec(channel=Channel.SMS, to_nurse=True), 1, self.nurse)
        return specs

    def set_message_counts(self, specs: list[CommSpec]) -> None:
        """Spread messages so the total is exactly MESSAGES_PER_COMMUNICATION per communication (when possible)."""
        rng = self.rng
        target = MESSAGES_PER_COMMUNICATION * len(specs)
        flexible = [spec for spec in specs if not spec.fixed_count]
        remaining = target - sum(spec.messages for spec in specs if spec.fixed_count)
        if not flexible:
            return
        mean = remaining / len(flexible)
        for spec in flexible:
            spec.messages = min(
                MAX_MESSAGES_PER_COMMUNICATION, 1 + round(rng.expovariate(1 / max(mean - 1, 0.5)))
            )
        remaining = max(len(flexible), min(remaining, MAX_MESSAGES_PER_COMMUNICATION * len(flexible)))
        diff = remaining - sum(spec.messages for spec in flexible)
        step = 1 if diff > 0 else -1
        while diff:
            spec = rng.choice(flexible)
            if 1 <= spec.messages + step <= MAX_MESSAGES_PER_COMMUNICATION:
                spec.messages += step
                diff -= step

    # -- one conversation

    def directions(self, spec: CommSpec) -> list[str]:
        if spec.is_unrecognized:
            return [IN] * spec.messages
        random = self.rng.random
        staff_started = spec.channel != Channel.CHAT and random() < 0.2
        directions = [OUT if staff_started else IN]
        for _ in range(spec.messages - 1):
            if directions[-1] == IN:
                directions.append(OUT if random() < 0.85 else IN)
            else:
                directions.append(IN if random() < 0.8 else OUT)
        return directions

    def times(self, spec: CommSpec, directions: list[str]) -> list[dt.datetime]:
        """When each message was written, oldest first: the newest some time ago, each earlier one a gap before."""
        rng = self.rng
        random = rng.random
        if spec.recent:
            age = dt.timedelta(minutes=rng.randint(5, 180))
        else:
            age = dt.timedelta(seconds=min(int(rng.expovariate(1 / (12 * 86400))), 365 * 86400) + 60)
        moment = self.now - age
        moments = [moment]
        chat = spec.channel == Channel.CHAT
        for at in range(len(directions) - 1, 0, -1):
            earlier, later = directions[at - 1], directions[at]
            if chat:
                low, high = 20, 240
            elif earlier == later:
                low, high = 60, 1800
            elif earlier == IN:
                low, high = 180, 6 * 3600
            else:
                low, high = 120, 2 * 86400
            moment -= dt.timedelta(seconds=low + int(random() * (high - low + 1)))
            moments.append(moment)
        moments.reverse()
        return moments

    def conversation(
        self,
        spec: CommSpec,
        communication_id: int,
        first_message_id: int,
        put_message: Callable[[tuple], None],
        attachments: list[tuple[int, dt.datetime, Document]],
    ) -> tuple:
        """Write one communication's messages (ids from ``first_message_id`` on) and return the communication's
        row, with the denormalised ``last_message_*`` taken from the newest message."""
        rng = self.rng
        random = rng.random

        def pick(options: Sequence):  # rng.choice, for the hot path: a third of the cost
            return options[int(random() * len(options))]

        row = spec.patient
        directions = self.directions(spec)
        moments = self.times(spec, directions)
        author = None
        if row is not None:  # outbound messages are written by the assignee or someone on the care team
            author = spec.assignee or pick(row.inbox_members or [self.lead])
        provider = row.provider if row is not None and row.provider is not None else pick(self.providers)
        addressee = spec.contact.first_name if spec.contact else (row.first if row else "")
        household = spec.household
        hh_member = pick(household.members[:2]) if household else None
        values = Placeholders(
            first=addressee,
            provider=self.provider_labels[provider.id],
            hh_first=hh_member.first_name if hh_member else "",
            hh_last=hh_member.last_name if hh_member else "",
            u_first=spec.stranger[0],
            u_last=spec.stranger[1],
        )
        values.rng = rng
        staff_started = directions[0] == OUT
        topic = pick(TOPICS)
        subject = topic.subject
        cores: list[str] = []
        if spec.is_unrecognized:
            if spec.unknown_text is not None:
                subject, first_text = spec.unknown_text
            elif spec.channel == Channel.SMS:
                first_text = pick(HOUSEHOLD_SMS)
            else:
                subject, first_text = pick(HOUSEHOLD_EMAIL)
            cores = [first_text.format_map(values)] + [UNRECOGNIZED_FOLLOW_UP] * (len(directions) - 1)
        else:
            # Replies in a random order without repeats (until a long conversation has used them all, then again
            # in that order): drawn one at a time, as a conversation needs one or two of each side's eight.
            unused = {OUT: None, IN: None}
            replies: dict[str, list[str]] = {OUT: [], IN: []}
            used = {OUT: 0, IN: 0}
            last_at = len(directions) - 1
            for at, direction in enumerate(directions):
                if at == 0:
                    text = pick(topic.opener_out if direction == OUT else topic.opener_in)
                elif at == last_at and at >= 2:
                    text = pick(CLOSE_OUT if direction == OUT else CLOSE_IN)
                elif direction == directions[at - 1]:
                    text = pick(FOLLOW_UP_OUT if direction == OUT else FOLLOW_UP_IN)
                else:
                    left = unused[direction]
                    if left is None:
                        left = unused[direction] = list(
                            topic.reply_out + MID_OUT if direction == OUT else topic.reply_in + MID_IN
                        )
                    drawn = replies[direction]
                    if left:
                        text = left.pop(int(random() * len(left)))
                        drawn.append(text)
                    else:
                        text = drawn[used[direction] % len(drawn)]
                    used[direction] += 1
                cores.append(text.format_map(values))
        channel = spec.channel
        is_email = channel in EMAIL_CHANNELS
        is_sms = channel == Channel.SMS
        is_secure = channel == Channel.SECURE_EMAIL
        subject = (subject or topic.subject) if is_email else ""
        reply_subject = f"Re: {subject}"

        counterpart = spec.counterpart
        our_address = spec.line.number if spec.line else (spec.address.address if spec.address else "")
        # Like the reply service: an outbound SMS is from its line; email and chat leave the sender blank.
        our_sender = spec.line.number if spec.line else ""
        # Message-IDs: ours for what we send and for the secure message page, the sender's domain otherwise.
        inbound_domain = (
            OUTBOUND_MESSAGE_ID_DOMAIN
            if is_secure or "@" not in counterpart
            else counterpart.rsplit("@", 1)[-1]
        )
        author_id = author.id if author is not None else None
        sender_name = spec.sender_name
        thread_ids: list[str] = []
        greeted = False
        documents = self.pending_documents.get(row.pk) if row is not None else None
        wrap = self.wrap
        body = ""
        last_inbound_at = None
        for at, (direction, core, moment) in enumerate(zip(directions, cores, moments, strict=True)):
            outbound = direction == OUT
            body = wrap(
                spec,
                core,
                outbound=outbound,
                first=at == 0,
                greeted=greeted,
                author=author,
                addressee=addressee,
                staff_started=staff_started,
            )
            greeted = greeted or outbound
            message_subject = body_html = email_message_id = in_reply_to = references = provider_id = (
                error
            ) = ""
            if is_email:
                number = (rng.getrandbits(128) & UUID4_MASK) | UUID4_BITS
                domain = OUTBOUND_MESSAGE_ID_DOMAIN if outbound else inbound_domain
                email_message_id = f"<{number:032x}@{domain}>"
                if thread_ids:
                    in_reply_to = thread_ids[-1]
                    references = " ".join(thread_ids[-MAX_REFERENCES:])
                thread_ids.append(email_message_id)
                message_subject = reply_subject if at else subject
                body_html = email_html(body)
            # Provider, provider id (what delivery returned: Twilio SID, Message-ID) and delivery status.
            if outbound:
                provider_name = Message.Provider.PORTAL  # sent from the Care Portal
                if is_sms:
                    provider_id = f"SM{rng.getrandbits(128):032x}"
                    status = Message.DeliveryStatus.DELIVERED
                    if random() < 0.03:
                        status, error = pick(SMS_FAILURES)
                elif is_email:
                    provider_id, status = email_message_id, Message.DeliveryStatus.SENT
                else:
                    status = Message.DeliveryStatus.DELIVERED
                sent_at = moment + dt.timedelta(seconds=1 + int(random() * 5))
            else:
                last_inbound_at = moment
                status, sent_at = Message.DeliveryStatus.RECEIVED, None
                if is_sms:
                    provider_name = Message.Provider.TWILIO
                    provider_id = f"SM{rng.getrandbits(128):032x}"
                elif channel == Channel.EMAIL:
                    provider_name = (
                        Message.Provider.SMTP if random() < 0.7 else Message.Provider.EMAIL_WEBHOOK
                    )
                    provider_id = email_message_id
                elif is_secure:
                    provider_name = Message.Provider.SECURE_PORTAL
                else:
                    provider_name = Message.Provider.CHAT
            message_id = first_message_id + at
            put_message(
                (
                    message_id,
                    communication_id,
                    direction,
                    author_id if outbound else None,
                    "" if outbound else sender_name,
                    our_sender if outbound else counterpart,
                    counterpart if outbound else our_address,
                    message_subject,
                    body,
                    body_html,
                    is_secure,
                    email_message_id,
                    in_reply_to,
                    references,
                    provider_name,
                    provider_id,
                    status,
                    error,
                    moment,
                    sent_at,
                )
            )
            if is_email and outbound and documents:
                attachments.append((message_id, moment, documents.pop()))

        last_direction, last_at = directions[-1], moments[-1]
        closed = (last_direction == OUT and random() < 0.75) or (last_direction == IN and random() < 0.05)
        if spec.is_unrecognized:
            closed = random() < 0.05
        if spec.recent:
            closed = False
        closed_at = None
        if closed:
            closed_at = (
                last_at
                if last_direction == OUT
                else min(self.now, last_at + dt.timedelta(minutes=rng.randint(2, 600)))
            )
        return (
            communication_id,
            channel,
            Communication.Status.CLOSED if closed else Communication.Status.OPEN,
            row.pk if row is not None else None,
            spec.contact.pk if spec.contact else None,
            spec.line.id if spec.line else None,
            spec.address.id if spec.address else None,
            spec.assignee.id if spec.assignee else None,
            subject,
            counterpart,
            spec.is_unrecognized,
            last_at,
            body[:200],
            last_direction,
            last_inbound_at or moments[0],
            closed_at,
            moments[0],
        )

    def wrap(
        self,
        spec: CommSpec,
        core: str,
        *,
        outbound: bool,
        first: bool,
        greeted: bool,
        author: User | None,
        addressee: str,
        staff_started: bool,
    ) -> str:
        """The message as the channel carries it: email greeting and signature, SMS introduction and opt-out."""
        if spec.channel in EMAIL_CHANNELS:
            if outbound:
                return f"Hi {addressee},\n\n{core}\n\nBest regards,\n{self.signatures[author.id]}\nCare team"
            random = self.rng.random
            if first or random() < 0.5:
                greeting = EMAIL_GREETINGS[int(random() * len(EMAIL_GREETINGS))]
                sign_off = EMAIL_SIGN_OFFS[int(random() * len(EMAIL_SIGN_OFFS))]
                return f"{greeting}\n\n{core}\n\n{sign_off}\n{spec.sender_name}".rstrip()
            return f"{core}\n\n{spec.sender_name}".rstrip()
        if outbound and not greeted:
            place = (
                spec.line.display_name
                if spec.line is not None and spec.line.owner_id is None
                else "your care team"
            )
            text = f"Hi {addressee}, this is {author.first_name} from {place}. {core}"
            if spec.channel == Channel.SMS and staff_started:
                text += " Reply STOP to opt out."
            return text
        return core


BULK_MODELS = (
    Patient,
    PatientContactMethod,
    Contact,
    CareTeamMember,
    Encounter,
    Communication,
    Message,
    Communication.candidate_patients.through,
)


def seed_demo(
    *, patients: int, communications: int, seed: int, progress_file=None, log=lambda _msg: None
) -> dict[str, int]:
    """Create the whole demo dataset in one transaction and return what was created, by kind."""
    return DemoBuilder(
        patients=patients, communications=communications, seed=seed, progress_file=progress_file, log=log
    ).build()
