"""The Care Portal's WebSocket (``/ws/portal/``): one per open tab, driven by the htmx ws extension.

It authenticates the session user and registers with its process's hub (``careportal.hub``), which brings the tab
its list rows, folder counts and bell, rendered once per kind of viewer. The socket itself joins only its open
conversation's group (by the access rule) and renders that conversation's changes and presence for its own user
(``careportal.live``; presence lives in the cache, ``careportal.presence``). It holds no business logic and no
state another process needs — only what this tab shows.

Protocol (JSON text frames from the page, each with the ws extension's ``HEADERS``):
``{"type": "subscribe", "rows": "1,2,3", "open": "12", "last_message_id": "340", "listed_at": "1764…",
"counts": "<fingerprint>"}`` whenever
the page changes what it shows (the page address comes in ``HEADERS["HX-Current-URL"]``); ``{"type": "heartbeat"}``
every ``LIVE_HEARTBEAT_SECONDS`` (answered with an HTML comment, so the page can tell a live socket from a dead one);
``{"type": "typing", "communication": 12}`` at most every 3 s while the user types, and with ``"active": false``
when the box is emptied. The server sends only HTML
fragments marked ``hx-swap-oob``, so a message holding text the database cannot store (a NUL or a lone surrogate
escape, ``inbox_project.unstorable``) is dropped with a logged warning and changes nothing. Close codes: 4401 not
signed in, 4403 user deactivated.
"""

import asyncio
import json
import logging
import time

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from adminportal.idle import session_is_expired
from inbox import events
from inbox_project import unstorable

from . import live, presence
from .hub import hub, in_pool

logger = logging.getLogger(__name__)

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_NOT_ALLOWED = 4403
PONG = "<!-- pong -->"
RECONCILE_SECONDS = 60.0  # groups are re-derived from the access rule at least this often
TYPING_MIN_INTERVAL = 1.0  # "typing" from one tab is handled at most once a second, whatever the page sends


class PortalConsumer(AsyncWebsocketConsumer):
    """One tab's socket. Its state is only what the tab shows (the subscription, and for the hub the list rows it
    has and the counts it was last sent), the group it joined and timers; every decision re-reads the user and the
    database through ``careportal.live``."""

    async def connect(self):
        self.user_id = None
        self.hub = None
        self.subscription = live.Subscription()
        self.rows: frozenset[int] = frozenset()  # the list rows the tab has (kept by the hub)
        self.counts_key: str | None = None  # the fingerprint of the counts the page shows (kept by the hub)
        self.joined: set[str] = set()
        self.lock = asyncio.Lock()
        self.conversation_due = False
        self.tasks: set[asyncio.Task] = set()
        self.typing_task: asyncio.Task | None = None
        self.viewing: int | None = None  # the communication this tab is present in
        self.reconciled_at = time.monotonic()
        self.typed_at = 0.0
        user = self.scope.get("user")
        # Accept, then close with our code: the page can tell "signed out" from a dropped connection and does not
        # retry (the ws extension reconnects only after abnormal closes).
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        if not user.is_active:  # read from the database for this connection by the auth middleware
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        # Idle timeout (adminportal.idle): refused; the next HTTP request signs the session out.
        if await in_pool(session_is_expired)(self.scope.get("session")):
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        self.user_id = user.pk
        self.hub = hub()
        await self.hub.attach(self)

    async def disconnect(self, code):
        for task in list(self.tasks):
            task.cancel()
        if self.hub is not None:
            await self.hub.detach(self)
        if self.user_id is not None and self.viewing is not None:
            viewing, self.viewing = self.viewing, None
            try:
                change = await in_pool(live.leave_presence)(self.user_id, viewing, channel=self.channel_name)
                if change:
                    await self._announce_presence(viewing, change)
            except Exception:
                logger.exception("could not clear presence", extra={"communication_id": viewing})
        for group in list(self.joined):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined.clear()

    async def dispatch(self, message):
        """The conversation's group also carries events this socket leaves to others (``communication.changed``,
        which the hub hears; the patient chat's ``chat.*``): those are ignored rather than treated as errors."""
        try:
            handled = hasattr(self, get_handler_name(message))
        except ValueError:
            handled = False
        if handled:
            await super().dispatch(message)

    # --- From the page --------------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.user_id is None or not text_data or len(text_data) > 64_000:
            return
        try:
            payload = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        found = unstorable.find_unstorable(payload)
        if found is not None:  # no error frame in this protocol: dropped, the socket stays open
            logger.warning(
                "portal socket message dropped: unstorable text",
                extra={"field": found[0], "user_id": self.user_id},
            )
            return
        kind = payload.get("type")
        if kind == "subscribe":
            await self._subscribe(payload)
        elif kind == "heartbeat":
            await self._heartbeat()
        elif kind == "typing":
            await self._typing(payload)

    async def _subscribe(self, payload: dict) -> None:
        async with self.lock:
            previous = self.subscription
            found = await self.hub.subscribe(self, payload)
            if found is None:
                await self.close(code=CLOSE_NOT_ALLOWED)
                return
            subscription = self.subscription = found.subscription
            newly_open = subscription.open_id != self.viewing
            self.rows = subscription.row_ids
            if subscription.counts_key or subscription.state != previous.state:
                self.counts_key = subscription.counts_key
            await self._join_only(found.groups)
            await self._follow_presence(subscription.open_id, newly_open=newly_open)
            await self._apply(found.push)
            if (subscription.state, subscription.listed_at) != (previous.state, previous.listed_at):
                self.hub.subscribed(self)  # the list's changes since it was read

    async def _heartbeat(self) -> None:
        await self.send(text_data=PONG)
        if self.viewing is not None:
            viewing = self.viewing
            change = await in_pool(live.touch_presence)(
                self.user_id, viewing, channel=self.channel_name, typing=None
            )
            if change:
                await self._announce_presence(viewing, change)
        if time.monotonic() - self.reconciled_at > RECONCILE_SECONDS:
            async with self.lock:
                await self._regroup()

    async def _typing(self, payload: dict) -> None:
        communication_id = live.as_id(payload.get("communication"))
        if communication_id is None or communication_id != self.viewing:
            return
        if payload.get("active") is False:  # the box was emptied: "typing…" ends now
            if self.typing_task is not None:
                self.typing_task.cancel()
            self.typed_at = 0.0
            change = await in_pool(presence.end_typing)(communication_id, user_id=self.user_id)
            if change:
                await self._announce_presence(communication_id, change)
            return
        if time.monotonic() - self.typed_at < TYPING_MIN_INTERVAL:  # the page sends at most every 3 s
            return
        self.typed_at = time.monotonic()
        change = await in_pool(live.touch_presence)(
            self.user_id, communication_id, channel=self.channel_name, typing=True
        )
        if change:
            await self._announce_presence(communication_id, change)
        # "typing…" ends by itself: look again once it has expired, and announce the change.
        if self.typing_task is not None:
            self.typing_task.cancel()
        self.typing_task = self._spawn(self._typing_expired(communication_id))

    async def _typing_expired(self, communication_id: int) -> None:
        await asyncio.sleep(float(getattr(settings, "TYPING_TTL_SECONDS", 6)) + 0.25)
        change = await in_pool(live.presence_expired)(communication_id)
        if change:
            await self._announce_presence(communication_id, change)

    # --- From the hub -----------------------------------------------------------------------------------------

    async def deliver(self, html: str) -> None:
        """A piece the hub rendered for this tab's kind of viewer."""
        try:
            await self.send(text_data=html)
        except Exception:  # the socket is closing; its page re-fetches on reconnect
            logger.debug("could not deliver a real-time piece", exc_info=True)

    def spawn_close(self, code: int) -> None:
        self._spawn(self.close(code=code))

    def conversation_changed(self, communication_id: int) -> None:
        """The open conversation changed: render it for this tab (once for a burst of changes)."""
        if not self.conversation_due:
            self.conversation_due = True
            self._spawn(self._render_conversation())

    async def _render_conversation(self) -> None:
        async with self.lock:
            self.conversation_due = False  # a change heard from now on renders again
            before = self.subscription
            if before.open_id is None:
                return
            push = await in_pool(live.conversation_changed)(self.user_id, before, before.open_id)
            await self._apply(push)
            if push.subscription.open_id != before.open_id:
                await self._regroup()
                await self._follow_presence(None, newly_open=False)

    # --- From the conversation's group ------------------------------------------------------------------------

    async def presence_changed(self, event):
        communication_id = event.get("communication_id")
        if self.user_id is None or communication_id != self.subscription.open_id:
            return
        push = await in_pool(live.presence_changed)(self.user_id, self.subscription, communication_id)
        await self._apply(push, keep_subscription=True)

    # --- Plumbing -------------------------------------------------------------------------------------------

    async def _apply(self, push: live.Push, *, keep_subscription: bool = False) -> None:
        if push.close_code is not None:
            await self.close(code=push.close_code)
            return
        if not keep_subscription:
            self.subscription = push.subscription
        if push.html:
            await self.send(text_data=push.html)

    async def _regroup(self) -> None:
        """Join and leave groups so membership is exactly what the access rule allows for what the tab shows."""
        wanted = await in_pool(self._allowed_groups)(self.subscription)
        if wanted is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        await self._join_only(wanted)

    async def _join_only(self, wanted: set[str]) -> None:
        self.reconciled_at = time.monotonic()
        for group in wanted - self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.add(group)
        for group in self.joined - wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.joined.discard(group)

    def _allowed_groups(self, subscription: live.Subscription) -> set[str] | None:
        user = live.load_user(self.user_id)
        return None if user is None else live.allowed_groups(user, subscription)

    async def _follow_presence(self, open_id: int | None, *, newly_open: bool) -> None:
        """Leave the conversation the tab no longer shows, and be present (not typing) in the one it opened —
        replying there when its box already holds a draft (a tab that reconnected)."""
        previous, self.viewing = self.viewing, open_id
        if previous is not None and previous != open_id:
            change = await in_pool(live.leave_presence)(self.user_id, previous, channel=self.channel_name)
            if change:
                await self._announce_presence(previous, change)
        if open_id is not None:
            typing = False if newly_open else None
            drafting = self.subscription.drafting if newly_open else None
            change = await in_pool(live.touch_presence)(
                self.user_id, open_id, channel=self.channel_name, typing=typing, drafting=drafting
            )
            if change:
                await self._announce_presence(open_id, change)

    async def _announce_presence(self, communication_id: int, change: presence.Change) -> None:
        """Tell the conversation's viewers; and every process's hub (the lists) when who is replying changed."""
        for group, event in events.presence_hints(communication_id, replying=change.replying):
            await self.channel_layer.group_send(group, event)

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # The database or the layer failed mid-update: close abnormally so the page reconnects and re-fetches.
        logger.error("real-time update failed", exc_info=task.exception())
        self._spawn(self.close(code=1011))
