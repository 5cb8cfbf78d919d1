"""File uploads: size and type allow-list, content sniffing, safe names; files are served only through the
access-checked download views, always as attachments with nosniff; no public media URL."""

import io
import re
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import Resolver404, resolve, reverse

from careportal.models import Document
from inbox.models import Attachment, Message
from inbox.uploads import UploadRejected, check_inbound, check_upload, safe_filename
from tests.factories import AttachmentFactory, CommunicationFactory, DocumentFactory, MessageFactory

HX = {"HTTP_HX_REQUEST": "true"}
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
GIF = b"GIF89a\x01\x00\x01\x00"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"
DOC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64


def docx_bytes(with_content_types: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if with_content_types:
            archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def upload(name, data, content_type):
    return SimpleUploadedFile(name, data, content_type=content_type)


# --- The rules, one by one ---------------------------------------------------------------------------------------

GOOD = [
    ("care-plan.pdf", PDF, "application/pdf"),
    ("photo.png", PNG, "image/png"),
    ("photo.JPG", JPEG, "image/jpeg"),
    ("wave.gif", GIF, "image/gif"),
    ("iphone.heic", HEIC, "image/heic"),
    ("notes.txt", "Blood pressure 120/80, feeling well. Café ☕".encode(), "text/plain"),
    ("readings.csv", b"date,systolic\n2026-01-01,120\n", "text/csv"),
    ("letter.doc", DOC, "application/msword"),
    ("letter.docx", docx_bytes(), DOCX_TYPE),
    ("scan.pdf", PDF, "application/octet-stream"),  # a browser that did not know: the extension decides
    ("export.csv", b"a,b\n1,2\n", "application/vnd.ms-excel"),  # Windows' name for a .csv
    ("photo.jpg", JPEG, "image/jpg"),
]


@pytest.mark.parametrize(("name", "data", "content_type"), GOOD, ids=[g[0] for g in GOOD])
def test_real_files_of_each_allowed_type_pass(name, data, content_type, settings):
    checked = check_upload(upload(name, data, content_type))
    assert checked.content_type != "application/octet-stream"
    assert checked.name == name.rsplit(".", 1)[0] + "." + name.rsplit(".", 1)[1].lower()


BAD = [
    ("page.html", b"<html><script>alert(1)</script>", "text/html", "not an allowed file type"),
    ("logo.svg", b"<svg onload=alert(1)>", "image/svg+xml", "not an allowed file type"),
    ("run.exe", b"MZ\x90\x00", "application/x-msdownload", "not an allowed file type"),
    ("no-extension", PDF, "application/pdf", "not an allowed file type"),
    ("scan.pdf", b"<html><body><script>alert(1)</script>", "application/pdf", "web page or SVG markup"),
    (
        "photo.png",
        b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        "image/png",
        "web page or SVG",
    ),
    ("photo.jpg", b"  \n<!DOCTYPE html><p>hi", "image/jpeg", "web page or SVG markup"),
    ("notes.txt", b"<script>alert(document.cookie)</script>", "text/plain", "web page or SVG markup"),
    ("notes.txt", "<html>".encode("utf-16"), "text/plain", "web page or SVG markup"),
    ("data.csv", b"<?xml version='1.0'?><svg/>", "text/csv", "web page or SVG markup"),
    ("report.pdf", b"MZ\x90\x00\x03\x00\x00\x00", "application/pdf", "program or script"),
    ("report.pdf", b"\x7fELF\x02\x01\x01", "application/pdf", "program or script"),
    ("notes.txt", b"#!/bin/sh\nrm -rf /\n", "text/plain", "program or script"),
    ("photo.png", JPEG, "image/png", "not a real image/png file"),
    ("report.pdf", b"just some text pretending", "application/pdf", "not a real application/pdf file"),
    ("letter.docx", b"PK\x03\x04 not really a zip", DOCX_TYPE, "not a real"),
    ("letter.docx", docx_bytes(with_content_types=False), DOCX_TYPE, "not a real"),
    ("letter.doc", PDF, "application/msword", "not a real application/msword file"),
    ("binary.txt", b"abc\x00\x01\x02", "text/plain", "not a real text/plain file"),
    ("scan.pdf", PDF, "image/png", "says it is image/png but its name ends in a different type"),
    ("scan.pdf", PDF, "text/html", "not an allowed file type"),
    ("page.csv", b"<html><script>alert(1)</script>", "application/vnd.ms-excel", "web page or SVG markup"),
    ("empty.pdf", b"", "application/pdf", "is empty"),
]


@pytest.mark.parametrize(
    ("name", "data", "content_type", "reason"), BAD, ids=[f"{b[0]}-{b[3][:20]}" for b in BAD]
)
def test_bad_files_are_refused_with_the_reason(name, data, content_type, reason):
    with pytest.raises(UploadRejected, match=reason):
        check_upload(upload(name, data, content_type))


def test_the_size_limit_is_checked_first_and_named(settings):
    settings.MAX_UPLOAD_BYTES = 1024
    with pytest.raises(UploadRejected, match=re.escape("“big.pdf” is larger than the 1.0\xa0KB limit")):
        check_upload(upload("big.pdf", PDF + b"0" * 1024, "application/pdf"))


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # right-to-left override: read as "invoiceexe.pdf"
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\scan.PDF", "scan.pdf"),
        ("a\r\nContent-Type: text/html.pdf", "html.pdf"),
        ("a\r\nb:c.pdf", "ab_c.pdf"),
        ('quote".pdf', "quote_.pdf"),
        ("zero\u200bwidth.pdf", "zerowidth.pdf"),
        ("...hidden.pdf", "hidden.pdf"),
        ("", "file"),
        ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ],
)
def test_names_are_made_safe(raw, safe):
    assert safe_filename(raw) == safe


def test_an_rtl_disguised_executable_is_refused():
    with pytest.raises(UploadRejected, match="not an allowed file type"):
        check_upload(upload("invoice\u202efdp.exe", PDF, "application/pdf"))


# --- Through the reply box: a clear error and nothing stored -------------------------------------------------------


@pytest.fixture
def email(nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse, counterpart="maria@mail.example")
    MessageFactory(communication=communication, email_message_id="<first@mail.example>")
    return communication


def stored_files() -> list[str]:
    found = []

    def walk(path):
        try:
            dirs, files = default_storage.listdir(path)
        except FileNotFoundError:
            return
        found.extend(f"{path}/{name}" for name in files)
        for name in dirs:
            walk(f"{path}/{name}" if path else name)

    walk("")
    return found


@pytest.mark.parametrize(
    ("name", "data", "content_type", "message"),
    [
        ("scan.pdf", b"<html><script>alert(1)</script>", "application/pdf", "web page or SVG markup"),
        ("logo.svg", b"<svg onload=alert(1)>", "image/svg+xml", "not an allowed file type"),
        ("report.pdf", b"MZ\x90\x00", "application/pdf", "program or script"),
        ("photo.png", PDF, "image/png", "not a real image/png file"),
    ],
)
def test_a_bad_upload_in_the_reply_box_is_refused_and_nothing_is_stored(
    client, nurse, email, name, data, content_type, message
):
    client.force_login(nurse)
    messages_before = Message.objects.count()

    response = client.post(
        reverse("careportal:communication_reply", args=[email.pk]),
        {"body": "See attached", "uploads": [upload(name, data, content_type)]},
        **HX,
    )

    assert response.status_code == 422
    assert message in response.content.decode()
    assert Message.objects.count() == messages_before
    assert not Document.objects.exists()
    assert not Attachment.objects.exists()
    assert stored_files() == []


def test_a_good_upload_is_stored_under_its_safe_name_and_canonical_type(client, nurse, email):
    client.force_login(nurse)

    response = client.post(
        reverse("careportal:communication_reply", args=[email.pk]),
        {"body": "See attached", "uploads": [upload("care\u202eplan.PDF", PDF, "application/octet-stream")]},
        **HX,
    )

    assert response.status_code == 200
    document = Document.objects.get()
    assert (document.name, document.content_type) == ("careplan.pdf", "application/pdf")
    attachment = Attachment.objects.get()
    assert (attachment.filename, attachment.content_type) == ("careplan.pdf", "application/pdf")


# --- Inbound attachments are sniffed too ---------------------------------------------------------------------------


def test_inbound_attachment_contents_are_checked():
    assert check_inbound("scan.pdf", "application/pdf", PDF) == ""
    assert check_inbound("song.mp3", "audio/mpeg", b"ID3\x03\x00") == ""
    assert "markup" in check_inbound("scan.pdf", "application/pdf", b"<html><script>alert(1)</script>")
    assert "markup" in check_inbound("clip.mp4", "video/mp4", b"<svg onload=alert(1)>")
    assert "program" in check_inbound("photo.jpg", "image/jpeg", b"MZ\x90\x00")
    assert "not a real image/png" in check_inbound("photo.png", "image/png", PDF)


def test_an_inbound_email_attachment_disguised_as_a_pdf_is_not_stored_and_noted(db):
    from tests.factories import InboundAddressFactory, PatientContactMethodFactory
    from tests.inbox.ingest_support import build_email, receive_email

    InboundAddressFactory(address="care@clinic.example")
    PatientContactMethodFactory(kind="email", value="maria@mail.example")
    raw = build_email(
        sender="maria@mail.example",
        to="care@clinic.example",
        attachments=[
            ("results.pdf", b"<html><script>alert(1)</script></html>", "application", "pdf"),
            ("real.pdf", PDF, "application", "pdf"),
        ],
    )

    message = receive_email(raw).message

    assert list(message.attachments.values_list("filename", flat=True)) == ["real.pdf"]
    assert (
        "Attachment “results.pdf” (application/pdf) was not stored: it contains web page or SVG markup"
        in (message.body_text)
    )


# --- Serving: only the access-checked views, always a download ---------------------------------------------------


def test_downloads_are_attachments_with_nosniff_and_an_rfc6266_name(client, nurse, email):
    document = DocumentFactory(patient=email.patient, name="résumé «Maria».pdf")
    attachment = AttachmentFactory(message=email.messages.first(), document=document, filename=document.name)
    client.force_login(nurse)

    response = client.get(reverse("careportal:attachment_download", args=[email.pk, attachment.pk]))

    assert response.status_code == 200
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=utf-8''r%C3%A9sum%C3%A9%20%C2%ABMaria%C2%BB.pdf" in disposition
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]


def test_a_stored_name_with_line_breaks_or_quotes_cannot_break_the_header(client, nurse, email):
    attachment = AttachmentFactory(message=email.messages.first(), filename='a"\r\nSet-Cookie: x=1.pdf')
    client.force_login(nurse)

    response = client.get(reverse("careportal:attachment_download", args=[email.pk, attachment.pk]))

    assert response.status_code == 200
    assert "\n" not in response["Content-Disposition"] and "\r" not in response["Content-Disposition"]
    assert (
        response["Content-Disposition"] == "attachment; filename*=utf-8''a%22%0D%0ASet-Cookie%3A%20x%3D1.pdf"
    )
    assert "x=1" not in response.headers.get("Set-Cookie", "")


def test_html_stored_before_the_rules_is_still_served_as_an_octet_stream_download(client, nurse, email):
    attachment = AttachmentFactory(
        message=email.messages.first(), filename="page.html", content_type="text/html"
    )
    client.force_login(nurse)

    response = client.get(reverse("careportal:attachment_download", args=[email.pk, attachment.pk]))

    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_media_files_have_no_public_url(nurse, email, settings):
    attachment = AttachmentFactory(message=email.messages.first())
    path = attachment.document.file.name
    assert default_storage.exists(path)

    assert (
        settings.STORAGES["default"]["OPTIONS"].get("base_url") is None
        or "base_url" not in settings.STORAGES["default"]["OPTIONS"]
    )
    for candidate in (f"/media/{path}", f"/{path}", f"/var/media/{path}"):
        with pytest.raises(Resolver404):
            resolve(candidate)
    anonymous, signed_in = Client(), Client()
    signed_in.force_login(nurse)
    for client in (anonymous, signed_in):
        assert client.get(f"/media/{path}").status_code == 404


def test_patient_facing_downloads_are_attachments_with_nosniff(client, nurse, patient):
    """The chat page's files (the link is the credential) are served like the staff download."""
    from careportal.chat import make_chat_token
    from tests.factories import ChatCommunicationFactory

    chat = ChatCommunicationFactory(patient=patient)
    reply = MessageFactory(communication=chat, direction="out", author=nurse, body_text="Here it is")
    attachment = AttachmentFactory(message=reply, filename="page.html", content_type="text/html")

    response = client.get(reverse("chat:attachment", args=[make_chat_token(patient), attachment.pk]))

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
