"""What a file must be before it is stored: size and type allow-list, a name safe to show and to download under, and
leading bytes that match the type it claims (so HTML, SVG or a program renamed ``scan.pdf`` is refused).

Used by the reply box's uploads (``inbox.services.validate_upload``) and by inbound attachments
(``inbox.ingest.common.store_attachments``); files are served only by the access-checked download views, always as
attachments with ``X-Content-Type-Options: nosniff``."""

import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass

from django.conf import settings
from django.template.defaultfilters import filesizeformat

SNIFF_BYTES = 4096

# The types a care-team member may upload, each with the file name extensions it may carry.
UPLOAD_TYPES: dict[str, tuple[str, ...]] = {
    "application/pdf": (".pdf",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/heic": (".heic", ".heif"),
    "text/plain": (".txt",),
    "text/csv": (".csv",),
    "application/msword": (".doc",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (".docx",),
}
TYPE_LABELS = "PDF, JPEG, PNG, GIF, HEIC, plain text, CSV or Word documents"
# Browsers and mail clients often send these when they do not know better; the extension then decides.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream", "application/x-download"}
# Other names browsers use for allowed types (Windows sends a .csv as Excel's type).
TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/heif": "image/heic",
    "text/x-csv": "text/csv",
    "application/csv": "text/csv",
    "application/vnd.ms-excel": "text/csv",
}

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif"}
# Leading bytes of programs and scripts that are refused whatever type they claim.
_EXECUTABLE_PREFIXES = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa",
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)
# Markup a browser would render or run if it were ever shown inline (checked in the first bytes, after whitespace).
_MARKUP = re.compile(
    rb"^\s*(<\?xml|<!doctype|<html|<head|<body|<script|<svg|<iframe|<object|<embed|<a\s|<img|<div|<meta|<link"
    rb"|<style|<title|<table|<!--|<\?php|<%)",
    re.IGNORECASE,
)
# Characters that change how a name reads without being visible: bidirectional overrides (``invoice\u202egpj.exe``
# reads as ``invoiceexe.jpg``), zero-width characters, control characters.
_INVISIBLE = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)


class UploadRejected(ValueError):
    """A file that may not be stored; ``str()`` says why, in words for the person who sent it."""


@dataclass(frozen=True)
class CheckedFile:
    name: str  # safe to show and to use as the download name
    content_type: str  # the canonical type the file is stored and served as


def safe_filename(name: str, *, fallback: str = "file") -> str:
    """The last path segment, without invisible or control characters, path separators or leading dots; at most
    120 characters with the extension kept."""
    name = unicodedata.normalize("NFC", str(name or ""))
    name = _INVISIBLE.sub("", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r'[<>:"|?*]', "_", name).strip().lstrip(".").strip()
    if not name:
        return fallback
    stem, ext = os.path.splitext(name)
    if len(ext) > 16 or not re.fullmatch(r"\.[A-Za-z0-9]+", ext or ".x"):
        stem, ext = name, ""
    return f"{stem[: 120 - len(ext)]}{ext.lower()}" or fallback


def _head(upload) -> bytes:
    upload.seek(0)
    data = upload.read(SNIFF_BYTES)
    upload.seek(0)
    return data


def looks_dangerous(head: bytes) -> str:
    """Why these leading bytes may never be stored as an attachment ("" when they may)."""
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if any(head.startswith(prefix) for prefix in _EXECUTABLE_PREFIXES):
        return "it is a program or script"
    if _MARKUP.match(stripped) or _MARKUP.match(_utf16_ascii(head)):
        return "it contains web page or SVG markup"
    return ""


def _utf16_ascii(head: bytes) -> bytes:
    """UTF-16 text (with or without a byte-order mark) reduced to its ASCII letters, for the markup check."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) > 3 and (head[1] == 0 or head[0] == 0)):
        return head.replace(b"\x00", b"").lstrip(b"\xff\xfe").lstrip(b"\xfe\xff")
    return b""


def matches_type(content_type: str, head: bytes, upload=None) -> bool:
    """Whether the leading bytes are those of ``content_type``: the signature's distinctive first bytes (enough to
    tell a real file from markup or a program under its name) for the types whose signature is known; other types
    match when they are not dangerous (checked separately)."""
    if content_type == "application/pdf":
        return head.lstrip()[:4] == b"%PDF"
    if content_type == "image/png":
        return head.startswith(b"\x89PNG")
    if content_type == "image/jpeg":
        return head.startswith(b"\xff\xd8")
    if content_type == "image/gif":
        return head.startswith(b"GIF8")
    if content_type in ("image/heic", "image/heif"):
        return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS
    if content_type in ("application/msword", "application/vnd.ms-excel"):
        return head.startswith(_OLE2)
    if content_type.startswith("application/vnd.openxmlformats-officedocument."):
        return head.startswith(b"PK\x03\x04") and _is_office_zip(upload)
    if content_type in ("text/plain", "text/csv"):
        return _is_plain_text(head)
    return True


def _is_office_zip(upload) -> bool:
    if upload is None:
        return True
    try:
        upload.seek(0)
        with zipfile.ZipFile(upload) as archive:
            names = set(archive.namelist())
        return "[Content_Types].xml" in names
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        upload.seek(0)


def _is_plain_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the sniffed bytes
            try:
                head.decode("cp1252")
            except UnicodeDecodeError:
                return False
    return True


def _extension_type(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    for content_type, extensions in UPLOAD_TYPES.items():
        if ext in extensions:
            return content_type
    return ""


def check_upload(upload, *, max_bytes: int | None = None) -> CheckedFile:
    """The rules for a file a care-team member uploads: at most ``MAX_UPLOAD_BYTES``; an allowed type whose
    extension agrees with the declared type; leading bytes of that type; nothing a browser could run.

    Raises ``UploadRejected`` with the reason; reads only the first bytes (and a Word file's zip directory)."""
    limit = max_bytes if max_bytes is not None else settings.MAX_UPLOAD_BYTES
    name = safe_filename(getattr(upload, "name", ""))
    label = f"“{name}”"
    if upload.size > limit:
        raise UploadRejected(f"{label} is larger than the {filesizeformat(limit)} limit.")
    if upload.size == 0:
        raise UploadRejected(f"{label} is empty.")
    declared = (getattr(upload, "content_type", "") or "").split(";")[0].strip().lower()
    by_extension = _extension_type(name)
    if TYPE_ALIASES.get(declared) == by_extension:
        declared = by_extension
    if not by_extension:
        raise UploadRejected(f"{label} is not an allowed file type ({TYPE_LABELS}).")
    if declared not in GENERIC_TYPES and declared != by_extension:
        if declared not in UPLOAD_TYPES:
            raise UploadRejected(f"{label} is not an allowed file type ({TYPE_LABELS}).")
        raise UploadRejected(f"{label} says it is {declared} but its name ends in a different type.")
    head = _head(upload)
    danger = looks_dangerous(head)
    if danger:
        raise UploadRejected(f"{label} was refused: {danger}.")
    if not matches_type(by_extension, head, upload):
        raise UploadRejected(f"{label} was refused: its contents are not a real {by_extension} file.")
    return CheckedFile(name=name, content_type=by_extension)


def check_inbound(filename: str, content_type: str, data: bytes) -> str:
    """Why an inbound attachment (email, MMS) may not be stored, or "" when it may. Inbound files allow more types
    (``inbox.ingest.common``); here only their contents are checked: nothing a browser could run, and the
    signature of the declared type where it is known."""
    head = (data or b"")[:SNIFF_BYTES]
    danger = looks_dangerous(head)
    if danger:
        return danger
    declared = (content_type or "").split(";")[0].strip().lower()
    if not data:
        return ""
    if declared.startswith("application/vnd.openxmlformats-officedocument."):
        import io

        return (
            ""
            if matches_type(declared, head, io.BytesIO(data))
            else f"its contents are not a real {declared} file"
        )
    if not matches_type(declared, head):
        return f"its contents are not a real {declared} file"
    return ""
