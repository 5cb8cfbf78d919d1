"""The patient's live-chat WebSocket (``/ws/chat/<token>/``): the signed link is the credential; the socket joins
only its own chat's ``communication.<id>`` group, stores what the patient writes raw first (acknowledging only
once it is stored), and forwards server-rendered message and "typing…" fragments.

Protocol (JSON text frames). Page → server: ``{"type": "message", "client_id": <uuid>, "text": str}``.
Server → page: ``{"type": "ack", "client_id", "html"}`` (the message is stored; ``html`` is its "Sending…" bubble),
``{"type": "messages", "html", "last_id"}`` (new messages, both directions, never internal notes),
``{"type": "typing", "active": bool, "html"}`` (staff typing, from ``presence.changed`` or ``presence.typing`` events
on the group) and ``{"type": "error", "client_id", "text"}`` (also for a message holding text the database cannot
store — a NUL or a lone surrogate escape, ``inbox_project.unstorable`` — which is refused and changes nothing). A link that is
not valid (or expires while the page is open) closes the socket with code 4403. The page passes the last message
id it shows as ``?after=<id>`` on every (re)connect and is sent whatever is newer, so nothing is missed.
"""

import json
import logging
import time
from collections import deque
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError

from inbox.events import group_for_communication
from inbox_project import proxies, unstorable

from . import chat, presence

logger = logging.getLogger(__name__)

CLOSE_NOT_ALLOWED = 4403
RATE_LIMIT = 20  # messages per RATE_WINDOW seconds from one page
RATE_WINDOW = 60.0
NOT_STORED = "Your message could not be sent just now. Please try again in a moment."


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _after(scope) -> int:
    values = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get("after") or ["0"]
    return int(values[0]) if values[0].isdigit() and len(values[0]) < 19 else 0


class PatientChatConsumer(AsyncWebsocketConsumer):
    """Authenticates by the token, joins the chat's group (and no other), forwards rendered partials. State here is
    per connection only (what this page has been sent); every fact lives in the database."""

    async def connect(self):
        self.session: chat.ChatSession | None = None
        self.group: str | None = None
        self.last_id = _after(self.scope)
        self.recent: deque[float] = deque()
        token = self.scope.get("url_route", {}).get("kwargs", {}).get("token", "")
        try:
            self.session = await database_sync_to_async(chat.open_chat)(token)
        except chat.ChatLinkInvalid:
            # Accept, then close with our code: the page can tell "link expired" from a dropped connection.
            await self.accept()
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        await self.accept()
        if self.session.communication is not None:
            await self._join(self.session.communication)
            await self._send_new_messages()

    async def disconnect(self, code):
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def dispatch(self, message):
        """Other consumers publish more kinds of events to ``communication.<id>`` (viewing, …) than a patient page
        needs; those are ignored rather than treated as errors."""
        try:
            handled = hasattr(self, get_handler_name(message))
        except ValueError:
            handled = False
        if handled:
            await super().dispatch(message)
        else:
            logger.debug("chat page ignores event", extra={"event": message.get("type")})

    # --- From the page ----------------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.session is None:
            return
        try:
            content = json.loads(text_data or "")
        except ValueError:
            content = None
        if not isinstance(content, dict) or content.get("type") != "message":
            await self._send(
                {"type": "error", "client_id": "", "text": "The page sent something it should not."}
            )
            return
        found = unstorable.find_unstorable(content)
        if found is not None:  # refused before anything is stored; the page keeps its socket
            field, why = found
            logger.warning("chat message refused: unstorable text", extra={"field": field})
            await self._send(
                {"type": "error", "client_id": str(content.get("client_id") or "")[:64], "text": why}
            )
            return
        await self._receive_message(content)

    async def _receive_message(self, content: dict):
        client_id = str(content.get("client_id") or "")[:64]
        if not await self._link_still_valid():
            return
        if not self._within_rate():
            await self._send(
                {"type": "error", "client_id": client_id, "text": "You are sending messages very quickly. "
                 "Please wait a minute and try again."}
            )  # fmt: skip
            return
        try:
            row, _ = await database_sync_to_async(chat.submit_chat_message)(
                session=self.session,
                client_id=client_id,
                text=content.get("text"),
                remote_addr=proxies.scope_client_ip(self.scope) or "",
                user_agent=_header(self.scope, b"user-agent"),
                reply_channel=self.channel_name,
            )
        except chat.ChatMessageRefused as error:
            await self._send({"type": "error", "client_id": client_id, "text": str(error)})
            return
        except DatabaseError:
            logger.exception("could not store a chat message; the page will retry")
            await self._send({"type": "error", "client_id": client_id, "text": NOT_STORED, "retry": True})
            return
        # Stored: acknowledge. Until it is filed the page shows it as "Sending…".
        html = "" if row.processed_at is not None else await database_sync_to_async(self._pending_html)(row)
        await self._send({"type": "ack", "client_id": chat.client_id_of(row.provider_id), "html": html})
        if self.group is None:
            await self._join_if_filed()
        await self._send_new_messages()

    def _within_rate(self) -> bool:
        now = time.monotonic()
        while self.recent and self.recent[0] < now - RATE_WINDOW:
            self.recent.popleft()
        if len(self.recent) >= RATE_LIMIT:
            return False
        self.recent.append(now)
        return True

    # --- From the group and the pipeline ----------------------------------------------------------------------

    async def communication_changed(self, event):
        if self.group is None or event.get("communication_id") != self.session.communication.pk:
            return
        if await self._link_still_valid():
            await self._send_new_messages()

    async def chat_filed(self, event):
        """The pipeline filed this page's message: on the first one, the chat communication now exists."""
        if self.group is None:
            await self._join_if_filed(event.get("communication_id"))
        await self._send_new_messages()

    async def presence_typing(self, event):
        """Staff typing in the reply box (published to ``communication.<id>`` by the Inbox's real-time consumer):
        ``{"type": "presence.typing", "communication_id", "user_id", "name", "is_typing"?}``."""
        if self.group is None or event.get("communication_id") != self.session.communication.pk:
            return
        if not await self._link_still_valid():
            return
        active = event.get("is_typing", True) is not False
        html = chat.render_typing(str(event.get("name") or "")) if active else ""
        await self._send({"type": "typing", "active": active, "html": html})

    chat_typing = presence_typing  # the same event under its other agreed name

    async def presence_changed(self, event):
        """The Inbox's real-time consumer announces that who views or types in the conversation changed
        (``{"type": "presence.changed", "communication_id"}``); who is typing is read from the shared presence
        store, so every web process tells the patient the same."""
        if self.group is None or event.get("communication_id") != self.session.communication.pk:
            return
        if not await self._link_still_valid():
            return
        names = await database_sync_to_async(self._typing_names)()
        html = chat.render_typing(*names) if names else ""
        await self._send({"type": "typing", "active": bool(names), "html": html})

    # --- Helpers ----------------------------------------------------------------------------------------------

    async def _link_still_valid(self) -> bool:
        """The link may expire while the page is open: then the page gets nothing more and is closed with 4403."""
        try:
            chat.read_chat_token(self.session.token)
        except chat.ChatLinkInvalid:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return False
        return True

    async def _join(self, communication):
        self.session = self.session.with_communication(communication)
        self.group = group_for_communication(communication.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def _join_if_filed(self, communication_id=None):
        def find():
            if isinstance(communication_id, int):
                return chat.chat_communication_of(self.session, communication_id)
            return chat.chat_communications(self.session.patient.pk, self.session.contact_id).first()

        communication = await database_sync_to_async(find)()
        if communication is not None:
            await self._join(communication)

    async def _send_new_messages(self):
        if self.session.communication is None:
            return
        html, last_id = await database_sync_to_async(self._new_messages_html)()
        if html:
            self.last_id = last_id
            await self._send({"type": "messages", "html": html, "last_id": last_id})

    def _new_messages_html(self) -> tuple[str, int]:
        entries = chat.entries_after(self.session, self.last_id)
        if not entries:
            return "", self.last_id
        return chat.render_entries(self.session, entries), max(e.message_id for e in entries)

    def _typing_names(self) -> list[str]:
        return [p.name for p in presence.present(self.session.communication.pk) if p.is_typing]

    def _pending_html(self, row) -> str:
        return chat.render_entries(self.session, [chat.pending_entry(row)])

    async def _send(self, payload: dict):
        await self.send(text_data=json.dumps(payload))
