"""Helpers for the real-time tests: a raw WebSocket client on the real ASGI stack (session cookie, origin), the
subscription a page sends, and reading pushed HTML fragments by element id so they can be compared with the HTTP
partials.

pytest-asyncio is not installed: each test runs one ``async def scenario()`` with ``run(scenario)``
(``asgiref.sync.async_to_sync``), and reaches the database through ``db(...)`` (``database_sync_to_async``), which
runs on the test's own thread and connection.
"""

import json
import re
from html.parser import HTMLParser

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from inbox.folders import Folder
from inbox_project.asgi import application

db = database_sync_to_async
HX = {"HTTP_HX_REQUEST": "true"}
QUIET = 0.4  # seconds of silence that count as "nothing was sent"


def run(scenario) -> None:
    async_to_sync(scenario)()


@pytest.fixture(autouse=True)
def fresh_layer_and_cache():
    """The in-memory channel layer and LocMem cache are process-wide: start each test empty. (On Redis, groups are
    left by every consumer that disconnects, and presence keys carry communication ids no other test reuses.)"""
    layer = get_channel_layer()
    if hasattr(layer, "groups") and hasattr(layer, "channels"):
        layer.groups.clear()
        layer.channels.clear()
    if "locmem" in settings.CACHES["default"]["BACKEND"]:
        cache.clear()
    yield


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def portal_socket(cookie: str | None = None, *, origin: str = "http://testserver") -> WebsocketCommunicator:
    headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/portal/", headers=headers)


def counts_shown(user, folder: Folder) -> str:
    """The fingerprint of the counts the user's page shows (``data-counts`` of the counts partial), which the page
    sends with its subscription."""
    client = Client()
    client.force_login(user)
    inbox, slug = folder.value.split("/")
    response = client.get(f"/inbox/{inbox}/{slug}/counts/", **HX)
    found = re.search(r'data-counts="([0-9a-f]+)"', response.content.decode())
    assert found, "the counts partial carries no fingerprint"
    return found.group(1)


def folder_url(folder: Folder, query: str = "") -> str:
    inbox, slug = folder.value.split("/")
    return f"http://testserver/inbox/{inbox}/{slug}/" + (f"?{query}" if query else "")


def subscription(
    url: str, *, rows=(), open=None, last_message_id=None, listed_at=None, counts=None, drafting=False
) -> str:
    """The JSON the page's hidden ``ws-send`` element sends (with what static/js/realtime.js adds)."""
    return json.dumps(
        {
            "type": "subscribe",
            "rows": ",".join(str(r) for r in rows),
            "open": str(open or ""),
            "last_message_id": str(last_message_id or ""),
            "listed_at": "" if listed_at is None else f"{listed_at:.6f}",
            "counts": counts or "",
            "drafting": "1" if drafting else "",
            "HEADERS": {"HX-Request": "true", "HX-Current-URL": url, "HX-Trigger": "live-subscribe"},
        }
    )


async def connect(cookie: str) -> WebsocketCommunicator:
    socket = portal_socket(cookie)
    connected, _ = await socket.connect()
    assert connected
    return socket


async def receive_all(socket: WebsocketCommunicator, *, quiet: float = QUIET, first: float = 3.0) -> str:
    """Every frame until ``quiet`` seconds pass without one (waiting up to ``first`` for the first), joined."""
    frames = []
    timeout = first
    while True:
        if await socket.receive_nothing(timeout=timeout):
            break
        frames.append(await socket.receive_from())
        timeout = quiet
    return "\n".join(f for f in frames if f != "<!-- pong -->")


async def receive_until(socket: WebsocketCommunicator, needle: str, *, timeout: float = 3.0) -> str:
    """Frames until one contains ``needle`` (all of them joined)."""
    frames = []
    while True:
        frame = await socket.receive_from(timeout=timeout)
        frames.append(frame)
        if needle in frame:
            return "\n".join(frames)


async def group_members(group: str) -> set[str]:
    """Channel names in a group, on the in-memory or the Redis layer."""
    layer = get_channel_layer()
    if hasattr(layer, "groups"):
        return set(layer.groups.get(group, {}))
    key = layer._group_key(group)
    connection = layer.connection(layer.consistent_hash(group))
    return {member.decode() for member in await connection.zrange(key, 0, -1)}


# --- Reading HTML -----------------------------------------------------------------------------------------------


VOID = {"input", "img", "br", "hr", "meta", "link", "source", "area", "col", "embed", "wbr"}


class _Finder(HTMLParser):
    """Finds the source spans of the elements with a given id (same-tag nesting counted)."""

    def __init__(self, element_id: str):
        super().__init__(convert_charrefs=False)
        self.element_id = element_id
        self.found: list[tuple] = []  # (start position, end position or the start tag's text)
        self.start = None
        self.tag = None
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        if self.start is None:
            if dict(attrs).get("id") == self.element_id:
                if tag in VOID:
                    self.found.append((self.getpos(), self.get_starttag_text()))
                else:
                    self.start, self.tag, self.depth = self.getpos(), tag, 1
        elif tag == self.tag:
            self.depth += 1

    def handle_startendtag(self, tag, attrs):
        if self.start is None and dict(attrs).get("id") == self.element_id:
            self.found.append((self.getpos(), self.get_starttag_text()))

    def handle_endtag(self, tag):
        if self.start is not None and tag == self.tag:
            self.depth -= 1
            if self.depth == 0:
                self.found.append((self.start, self.getpos()))
                self.start = None


def _offset(text: str, position) -> int:
    line, column = position
    lines = text.splitlines(keepends=True)
    return sum(len(part) for part in lines[: line - 1]) + column


def elements(html: str, element_id: str) -> list[str]:
    """The outer HTML of every element with ``element_id`` in ``html``, in order."""
    finder = _Finder(element_id)
    finder.feed(html)
    finder.close()
    out = []
    for start, end in finder.found:
        if isinstance(end, str):
            out.append(end)
        else:
            out.append(html[_offset(html, start) : html.index(">", _offset(html, end)) + 1])
    return out


def element(html: str, element_id: str) -> str | None:
    """The outer HTML of the (first) element with ``element_id`` in ``html``, or None."""
    found = elements(html, element_id)
    return found[0] if found else None


def normalized(html: str | None) -> str:
    """For comparing a pushed partial with the HTTP one: the out-of-band marker and CSRF tokens removed (a token is
    per request; pushed forms rely on the page's X-CSRFToken header), whitespace collapsed."""
    assert html is not None, "element not found"
    html = re.sub(r'\s+hx-swap-oob="[^"]*"', "", html)
    html = re.sub(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]*">', "", html)
    html = re.sub(r">\s+<", "><", html)
    return re.sub(r"\s+", " ", html).strip()


def ids_in(html: str, prefix: str) -> list[int]:
    return [int(found) for found in re.findall(rf'id="{prefix}(\d+)"', html)]


UPSERT = 'hx-swap-oob="beforeend:#inbox-incoming"'


def upserted(html: str) -> list[int]:
    """Ids of the rows handed to the page to put at their place (``#inbox-incoming``), in order."""
    ids = []
    for part in html.split(UPSERT)[1:]:
        found = re.search(r'<li id="row-(\d+)"', part)
        assert found, "an upsert without a row"
        ids.append(int(found.group(1)))
    return ids


def sort_keys(html: str) -> dict[int, str]:
    """Each pushed row's sort key (newest first sorts the keys in descending order)."""
    return {int(pk): key for pk, key in re.findall(r'<li id="row-(\d+)"[^>]* data-sort="([^"]+)"', html)}


def oob_targets(html: str) -> list[str]:
    return re.findall(r'hx-swap-oob="([^"]*)"', html)


async def receive_frames(
    socket: WebsocketCommunicator, *, quiet: float = QUIET, first: float = 3.0
) -> list[str]:
    frames = []
    timeout = first
    while not await socket.receive_nothing(timeout=timeout):
        frame = await socket.receive_from()
        if frame != "<!-- pong -->":
            frames.append(frame)
        timeout = quiet
    return frames


def latest(frames: list[str], element_id: str) -> str | None:
    """The element as last pushed (a moved row is first deleted, then inserted: the insertion)."""
    for frame in reversed(frames):
        found = elements(frame, element_id)
        if found:
            return found[-1]
    return None


async def subscribe(socket: WebsocketCommunicator, claim: str) -> list[str]:
    """Send the subscription and wait until the server has handled it (a heartbeat after it is answered in order);
    returns what the server pushed meanwhile (the open conversation's catch-up and presence)."""
    await socket.send_to(text_data=claim)
    await socket.send_to(text_data='{"type": "heartbeat"}')
    frames = []
    while (frame := await socket.receive_from(timeout=5)) != "<!-- pong -->":
        frames.append(frame)
    return frames
