"""Malformed email never crashes ingestion: the raw item is kept and ends either filed or with a clear error."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbox.ingest.common import IngestError
from inbox.ingest.email import ParsedEmail, parse_email
from inbox.models import Message, RawInbound
from tests.factories import InboundAddressFactory
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    build_email,
    eager_celery,
    hook_secrets,
    receive_email,
)

pytestmark = pytest.mark.django_db

GOOD = build_email(html="<p>Hello</p>", attachments=[("a.pdf", b"%PDF-1.4", "application", "pdf")]).replace(
    b"\n", b"\r\n"
)


def nested(depth: int) -> bytes:
    head = b"From: maria@mail.example\r\nTo: care@clinic.example\r\nMIME-Version: 1.0\r\n"
    parts, tail = b"", b""
    for level in range(depth):
        parts += f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
        tail = f"\r\n--b{level}--\r\n".encode() + tail
    return head + parts + b"Content-Type: text/plain\r\n\r\ndeep text" + tail


CORPUS = {
    "zero bytes": b"",
    "only whitespace": b"\r\n \r\n",
    "truncated in the headers": GOOD[:60],
    "truncated in the body": GOOD[: len(GOOD) // 2],
    "truncated mid base64": GOOD[: GOOD.index(b"JVBER") + 3] if b"JVBER" in GOOD else GOOD[:-40],
    "no headers at all": b"just some text without any header\r\n",
    "binary garbage": bytes(range(256)) * 8,
    "no sender": b"To: care@clinic.example\r\nSubject: hi\r\n\r\nbody",
    "wrong charset": b"From: a@mail.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe\xe9t\xe9",
    "unknown charset": b"From: a@mail.example\r\nContent-Type: text/plain; charset=x-nope\r\n\r\nhi",
    "charset that is not a text codec": b"From: a@mail.example\r\nContent-Type: text/plain; charset=base64\r\n\r\nhi",
    "bad encoded word": b"From: =?utf-8?b?####?= <a@mail.example>\r\nSubject: =?x-bad?q?=ZZ?=\r\n\r\nhi",
    "broken base64": b"From: a@mail.example\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***",
    "multipart without boundary": b"From: a@mail.example\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\nhi\r\n--x--",
    "multipart never closed": b'From: a@mail.example\r\nContent-Type: multipart/mixed; boundary="q"\r\n\r\n--q\r\n'
    b"Content-Type: text/plain\r\n\r\nunfinished",
    "nested multiparts (5)": nested(5),
    "nested multiparts (60)": nested(60),
    "nested multiparts (2000)": nested(2000),
    "huge header": b"From: a@mail.example\r\nSubject: " + b"A" * 300_000 + b"\r\n\r\nbody",
    "many headers": b"From: a@mail.example\r\n" + b"X-Filler: 1\r\n" * 20_000 + b"\r\nbody",
    "huge references": b"From: a@mail.example\r\nReferences: " + b"<x@y> " * 50_000 + b"\r\n\r\nbody",
    "nul bytes": b"From: a@mail.example\r\nSubject: a\x00b\r\n\r\nnul\x00inside",
    "message/rfc822 without body": b"From: a@mail.example\r\nContent-Type: message/rfc822\r\n\r\n",
    "report without parts": b'From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n--r--\r\n',
    "attachment with hostile filename": b'From: a@mail.example\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n--z\r\n'
    b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="../../etc/passwd\x00.pdf"\r\n\r\n'
    b"%PDF\r\n--z--\r\n",
    "lone surrogate escapes in 8-bit headers": b"From: \xed\xa0\x80 <a@mail.example>\r\nSubject: \xed\xb2\x80\r\n\r\nx",
}


@pytest.mark.parametrize("raw", CORPUS.values(), ids=CORPUS.keys())
def test_malformed_email_is_kept_and_ends_filed_or_with_a_clear_error(raw):
    InboundAddressFactory(address="care@clinic.example")
    row = receive_email(raw)
    assert bytes(row.raw) == raw  # the raw item is kept exactly as received
    assert row.attempts == 1
    if row.processed_at is None:
        assert row.error and "Traceback" not in row.error
        assert Message.objects.count() == 0
    else:
        assert row.error == ""
        message = row.message or Message(body_text="")  # a bounce for nothing we sent files no message
        assert "\x00" not in message.body_text + message.subject + message.sender_name
        for attachment in message.attachments.all() if message.pk else []:
            assert "/" not in attachment.filename and ".." not in attachment.filename


def test_empty_email_has_a_clear_error():
    row = receive_email(b"")
    assert (row.processed_at, row.error) == (None, "The email is empty (0 bytes).")


def test_email_without_a_sender_has_a_clear_error():
    row = receive_email(CORPUS["no sender"])
    assert row.error == "The email has no sender address (From)."


def test_deeply_nested_email_has_a_clear_error():
    row = receive_email(nested(60))
    assert "nested" in row.error


def test_a_failing_item_can_be_processed_again_after_a_fix(monkeypatch):
    from inbox.ingest.raw import requeue

    row = receive_email(b"To: care@clinic.example\r\n\r\nno sender")
    RawInbound.objects.filter(pk=row.pk).update(raw=b"From: a@mail.example\r\n\r\nfixed")
    requeue(row)
    row.refresh_from_db()
    assert row.error == "" and row.processed_at is not None
    assert row.message.body_text == "fixed"


# Bounded and reproducible: the same 200 examples on every run, no example database written to the work tree.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _check(raw: bytes) -> None:
    try:
        parsed = parse_email(raw)
    except IngestError as exc:
        assert str(exc)
    else:
        assert isinstance(parsed, ParsedEmail)
        assert "\x00" not in parsed.body_text + parsed.body_html + parsed.subject
        parsed.body_text.encode("utf-8")  # storable: no lone surrogates
        parsed.subject.encode("utf-8")


HEADER_NAMES = st.sampled_from(
    [b"From", b"To", b"Subject", b"Content-Type", b"Content-Transfer-Encoding", b"Message-ID", b"References",
     b"In-Reply-To", b"Content-Disposition", b"Auto-Submitted", b"MIME-Version"]
)  # fmt: skip
HEADER_VALUES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [b"multipart/mixed; boundary=b", b"multipart/alternative; boundary=\"b\"", b"text/html; charset=utf-7",
         b"multipart/report; report-type=delivery-status; boundary=b", b"base64", b"quoted-printable",
         b"=?utf-8?b?w6k=?= <x@y.example>", b"attachment; filename*=utf-8''%E9.pdf", b"<a@b> <c@d>"]
    ),
)  # fmt: skip


@st.composite
def mime_like(draw) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=12))
    body = draw(
        st.lists(
            st.one_of(st.binary(max_size=120), st.sampled_from([b"--b", b"--b--", b"\r\n"])), max_size=12
        )
    )
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + b"\r\n".join(body)


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_parser_never_crashes_on_arbitrary_bytes(raw):
    _check(raw)


@FUZZ
@given(raw=mime_like())
def test_parser_never_crashes_on_mime_like_input(raw):
    _check(raw)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(GOOD)), noise=st.binary(max_size=40))
def test_parser_never_crashes_on_truncated_or_corrupted_email(cut, noise):
    _check(GOOD[:cut] + noise + GOOD[cut + len(noise) :])


def test_hostile_headers_reach_the_quadratic_parser_only_cut_to_size(monkeypatch):
    """``policy.default``'s structured header parser is quadratic on hostile input, so every value it (and RFC 2047
    decoding) is given must be cut to MAX_HEADER_CHARS first; MIME structure is walked with the linear compat32.
    Pinned by the sizes the parser receives, not by a timing."""
    from email import policy

    from inbox.ingest import email as ingest_email

    seen: list[int] = []
    fetch_parse = policy.default.header_fetch_parse
    decode = ingest_email.decode_header

    def recording_fetch_parse(name, value):
        seen.append(len(value))
        return fetch_parse(name, value)

    def recording_decode(value):
        seen.append(len(value))
        return decode(value)

    monkeypatch.setattr(
        type(policy.default), "header_fetch_parse", lambda _self, n, v: recording_fetch_parse(n, v)
    )
    monkeypatch.setattr(ingest_email, "decode_header", recording_decode)
    stuffed = "a; " * 1400
    part = f"--z\r\nContent-Type: text/plain; {stuffed}\r\nContent-Disposition: attachment; {stuffed}\r\n\r\nhi\r\n"
    raws = [
        b'From: a@mail.example\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n'
        + part.encode() * 150
        + b"--z--",
        b'From: "'
        + b'a\\"' * 30_000
        + b" <a@mail.example>\r\nSubject: "
        + b"=?utf-8?q?a?= " * 30_000
        + b"\r\n\r\nx",
    ]
    for raw in raws:
        _check(raw)
    assert seen, "the hostile headers were never decoded"
    assert max(seen) <= ingest_email.MAX_HEADER_CHARS
