"""The real-time fan-out of one web process (DESIGN.md: Real time): a hub per event loop hears every hint once and
renders each change once per kind of viewer among the process's open tabs, then hands the pieces to the sockets in
memory — so the cost of a change grows with the kinds of viewer, not with the tabs.

- One subscription per process: the hub's own channel joins ``inbox.events.LIVE_GROUP`` (every
  ``communication.changed``) and the group of each user with a tab here (their notifications), refcounted. A tab
  joins no group for its list; it joins its open conversation's group itself (presence, typing).
- Coalescing by the newest state: hints only mark communications dirty. One worker drains them in batches — while
  a batch renders, the next one collects — and a batch reads the database as it is now, so a tab that is k changes
  behind gets one update to the newest state, each tab's frames in order.
- A kind of viewer is ``live.list_key``: the same user on the same folder and filters. Its rows are rendered once
  per batch (one query for all changed ids, through the folder's selector and so the access rule) and its counts at
  most once a second (leading and trailing edge), only for changes that can move them. The bell is rendered once per
  user and notification, for all their tabs.
- A pushed row carries its sort key; the page puts it at its place, so a row never waits for its neighbour.
- When a tab (re)subscribes with the time its list was read, the changes since are read from the database
  (``live.list_catch_up``): nothing committed between the page's read and its socket listening is missed.
- "… is replying" on list rows (``replying.changed``, from ``careportal.presence``): a small marker per row,
  rendered once per user for the rows their tabs show here; a timer looks again when a replier's entry would expire
  (their tab went silent), so the marker never outlives them.
- Database work runs on a bounded thread pool, off the one thread that runs the process's synchronous views.

The hub keeps no state another process needs: what it holds is which local sockets show what, and timers.
"""

import asyncio
import functools
import logging
import time
import weakref
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections

from inbox import events
from inbox.events import LIVE_GROUP, group_for_user

from . import live
from .views.notifications import bell_push

logger = logging.getLogger(__name__)

# Changes that leave every list row and count as it was: a delivery receipt, an internal note (neither is shown
# in a row). Only the open conversation hears them.
CONVERSATION_ONLY_KINDS = frozenset({"delivery", "note"})
COUNTS_INTERVAL = 1.0  # a kind of viewer's counts are recounted at most once a second
GROUP_REFRESH_SECONDS = 3600.0  # re-join groups well before the channel layer's group expiry (a day)
RETRY_SECONDS = 1.0
EXPIRY_MARGIN_SECONDS = 0.5  # a replier's entry is looked at again this long after it would expire

_executor: ThreadPoolExecutor | None = None


def in_pool(func):
    """``func`` as a coroutine function run on the real-time thread pool (``LIVE_DB_THREADS``), each call with its
    own database connection (from the connection pool on PostgreSQL), closed when it returns."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.LIVE_DB_THREADS, thread_name_prefix="live-db")

    @functools.wraps(func)
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()  # back to the pool: an idle thread holds no connection

    return database_sync_to_async(call, thread_sensitive=False, executor=_executor)


class Hub:
    """The fan-out of one event loop's Care Portal sockets (``careportal.consumers.PortalConsumer``)."""

    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.tabs: dict[str, object] = {}  # channel name → consumer
        self.users: dict[int, int] = defaultdict(int)  # user id → tabs here
        # Communication id → whether lists may change (else only the open conversation).
        self.changes: dict[int, bool] = {}
        self.bells: dict[int, int | None] = {}  # user id → their newest notification (None: one was read)
        self.replying: set[int] = set()  # communications whose "… is replying" changed
        self.replying_timers: dict[int, asyncio.TimerHandle] = {}  # id → a look when its replier would expire
        self.catch_ups: set[str] = set()  # tabs whose list is read again since it was listed
        self.counts_due: set[tuple] = set()  # kinds of viewer whose trailing recount is due
        self.counts_at: dict[tuple, float] = {}
        self.counts_timers: dict[tuple, asyncio.TimerHandle] = {}
        self.wake = asyncio.Event()
        self.subscriptions: list[tuple[object, dict, asyncio.Future]] = []  # waiting to be read together
        self.subscriptions_wake = asyncio.Event()
        self.lock = asyncio.Lock()  # start, stop, joins and leaves
        self.tasks: list[asyncio.Task] = []

    # --- Tabs -------------------------------------------------------------------------------------------------

    async def attach(self, tab) -> None:
        async with self.lock:
            if self.channel is None:
                await self._start()
            self.tabs[tab.channel_name] = tab
            self.users[tab.user_id] += 1
            if self.users[tab.user_id] == 1:
                await self.layer.group_add(group_for_user(tab.user_id), self.channel)

    async def detach(self, tab) -> None:
        async with self.lock:
            if self.tabs.pop(tab.channel_name, None) is None:
                return
            self.users[tab.user_id] -= 1
            if self.users[tab.user_id] <= 0:
                del self.users[tab.user_id]
                await self._leave(group_for_user(tab.user_id))
            if not self.tabs:
                await self._stop()

    async def subscribe(self, tab, payload: dict) -> "live.Subscribed | None":
        """What the tab's (re)subscription means (``live.subscribed_together``), read together with every other
        subscription that arrives meanwhile: a burst of tabs costs a few queries per user, not per tab."""
        future = asyncio.get_running_loop().create_future()
        self.subscriptions.append((tab, payload, future))
        self.subscriptions_wake.set()
        return await future

    def subscribed(self, tab) -> None:
        """The tab says what it shows now: bring its list up to date from when it was read."""
        if tab.subscription.state is not None and tab.subscription.listed_at is not None:
            self.catch_ups.add(tab.channel_name)
            self.wake.set()

    # --- Hearing ----------------------------------------------------------------------------------------------

    async def _start(self) -> None:
        # A process-specific channel like every consumer's: channels-redis reads them all from one key per process
        # (a channel of another prefix would wait for the consumers' reads). Settings size that key for bursts.
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(LIVE_GROUP, self.channel)
        loop = asyncio.get_running_loop()
        work = (self._listen, self._work, self._read_subscriptions, self._refresh)
        self.tasks = [loop.create_task(task()) for task in work]

    async def _stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for timer in [*self.counts_timers.values(), *self.replying_timers.values()]:
            timer.cancel()
        self.tasks, self.counts_timers, self.replying_timers = [], {}, {}
        channel, self.channel = self.channel, None
        try:
            await self.layer.group_discard(LIVE_GROUP, channel)
        except Exception:
            logger.exception("could not leave the real-time group")

    async def _leave(self, group: str) -> None:
        try:
            await self.layer.group_discard(group, self.channel)
        except Exception:
            logger.exception("could not leave a real-time group", extra={"group": group})

    async def _listen(self) -> None:
        channel = self.channel
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The layer failed (Redis restarting): hints may have been lost. Every tab reconnects and re-fetches
                # what it shows from the database; the groups are joined again.
                logger.exception("real-time hub lost its channel layer")
                await asyncio.sleep(RETRY_SECONDS)
                await self._rejoin()
                self._close_all(1011)
                continue
            self.hear(message)

    def hear(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "communication.changed":
            communication_id = message.get("communication_id")
            if isinstance(communication_id, int):
                lists = str(message.get("kind", "")) not in CONVERSATION_ONLY_KINDS
                self.changes[communication_id] = self.changes.get(communication_id, False) or lists
                self.wake.set()
        elif kind == "replying.changed":
            communication_id = message.get("communication_id")
            if isinstance(communication_id, int):
                self.replying.add(communication_id)
                self.wake.set()
        elif kind in ("notification.created", "notification.read"):
            user_id, notification_id = message.get("user_id"), message.get("notification_id")
            if isinstance(user_id, int) and user_id in self.users:
                if not isinstance(notification_id, int) or kind == "notification.read":
                    notification_id = None
                self.bells[user_id] = notification_id or self.bells.get(user_id)
                self.wake.set()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            await self._rejoin()

    async def _rejoin(self) -> None:
        async with self.lock:
            if self.channel is None:
                return
            try:
                for group in [LIVE_GROUP, *(group_for_user(user_id) for user_id in self.users)]:
                    await self.layer.group_add(group, self.channel)
            except Exception:
                logger.exception("could not join the real-time groups again")

    async def _read_subscriptions(self) -> None:
        while True:
            await self.subscriptions_wake.wait()
            self.subscriptions_wake.clear()
            waiting, self.subscriptions = self.subscriptions, []
            requests = [(tab.user_id, payload, tab.subscription) for tab, payload, _ in waiting]
            try:
                results = await in_pool(live.subscribed_together)(requests)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the socket closes abnormally; its page reconnects and re-fetches
                results = [error] * len(waiting)
            for (_, _, future), result in zip(waiting, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    # --- Rendering and fan-out --------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            changes, self.changes = self.changes, {}
            bells, self.bells = self.bells, {}
            catch_ups, self.catch_ups = self.catch_ups, set()
            counts_due, self.counts_due = self.counts_due, set()
            replying, self.replying = self.replying, set()
            try:
                await self._batch(changes, bells, catch_ups, counts_due, replying)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database failed mid-update: every tab reconnects and re-fetches what it shows.
                logger.exception("real-time fan-out failed")
                self._close_all(1011)

    async def _batch(
        self, changes: dict, bells: dict, catch_ups: set, counts_due: set, replying: set
    ) -> None:
        tabs = list(self.tabs.values())
        for tab in tabs:  # the open conversation: the tab's own (what it shows of it is its own)
            if tab.subscription.open_id in changes:
                tab.conversation_changed(tab.subscription.open_id)
        listed = {pk for pk, lists in changes.items() if lists}
        jobs: list[tuple[tuple, object, list]] = []  # (kind of viewer, render call, tabs)
        viewers: dict[tuple, list] = defaultdict(list)
        for tab in tabs:
            if tab.subscription.state is not None and tab.channel_name not in catch_ups:
                viewers[live.list_key(tab.user_id, tab.subscription.state)].append(tab)
        for key in [key for key in self.counts_at if key not in viewers]:
            del self.counts_at[key]  # nobody here shows that list any more
        for key, members in viewers.items():
            with_counts = self._counts_now(key) if listed or key in counts_due else False
            if not listed and not with_counts:
                continue
            open_ids = {tab.subscription.open_id for tab in members} & listed
            call = in_pool(live.list_changes)(
                key[0], key[1], listed, open_ids=open_ids, with_counts=with_counts
            )
            jobs.append((key, call, members))
        for tab in (self.tabs.get(name) for name in catch_ups):
            if tab is None or tab.subscription.state is None or tab.subscription.listed_at is None:
                continue
            subscription = tab.subscription
            call = in_pool(live.list_catch_up)(
                tab.user_id,
                subscription.state,
                subscription.listed_at,
                row_ids=tab.rows,
                open_id=subscription.open_id,
            )
            jobs.append((live.list_key(tab.user_id, subscription.state), call, [tab]))
        bell_jobs = [(user_id, in_pool(bell_push)(user_id, bell)) for user_id, bell in bells.items()]
        marker_jobs = self._marker_jobs(replying)
        results = await asyncio.gather(
            *(call for _, call, _ in jobs),
            *(call for _, call in bell_jobs),
            *(call for _, call in marker_jobs),
        )
        removals: dict[int, str] = {}
        for (key, _, members), changed in zip(jobs, results[: len(jobs)], strict=True):
            for tab in members:
                await self._send_list(tab, key, changed, removals)
        bell_results = results[len(jobs) : len(jobs) + len(bell_jobs)]
        for (user_id, _), html in zip(bell_jobs, bell_results, strict=True):
            if html:
                for tab in [tab for tab in self.tabs.values() if tab.user_id == user_id]:
                    await tab.deliver(html)
        for (user_id, _), found in zip(marker_jobs, results[len(jobs) + len(bell_jobs) :], strict=True):
            await self._send_markers(user_id, found)

    # --- "… is replying" on list rows ---------------------------------------------------------------------------

    def _marker_jobs(self, replying: set) -> list[tuple[int, object]]:
        """One render per user among the tabs here whose list shows a row whose replying changed."""
        wanted: dict[int, set[int]] = defaultdict(set)
        for tab in self.tabs.values():
            if tab.subscription.state is not None:
                wanted[tab.user_id].update(replying & tab.rows)
        return [
            (user_id, in_pool(live.replying_markers)(user_id, ids)) for user_id, ids in wanted.items() if ids
        ]

    async def _send_markers(self, user_id: int, found: "live.ReplyingMarkers") -> None:
        for tab in [tab for tab in self.tabs.values() if tab.user_id == user_id]:
            if found.close_code is not None:
                await tab.close(code=found.close_code)
                continue
            shown = [html for pk, html in found.markers.items() if pk in tab.rows]
            if shown and tab.subscription.state is not None:
                await tab.deliver(live.markers_html(shown))
        for pk, until in found.until.items():
            self._look_again(pk, until)

    def _look_again(self, communication_id: int, until: float) -> None:
        """When the replier's entry would expire (unless a heartbeat moves it on meanwhile), look again."""
        if communication_id in self.replying_timers:
            return
        delay = max(until - live.presence.clock(), 0.0) + EXPIRY_MARGIN_SECONDS
        loop = asyncio.get_running_loop()
        self.replying_timers[communication_id] = loop.call_later(
            delay, lambda: asyncio.ensure_future(self._replying_expired(communication_id))
        )

    async def _replying_expired(self, communication_id: int) -> None:
        self.replying_timers.pop(communication_id, None)
        if self.channel is None:
            return
        try:
            change, until = await in_pool(live.replying_expired)(communication_id)
            if change:  # announced to the conversation and to every process's hub, this one included
                for group, event in events.presence_hints(communication_id, replying=change.replying):
                    await self.layer.group_send(group, event)
            if until is not None:
                self._look_again(communication_id, until)
        except Exception:
            logger.exception(
                "could not look at an expired replier", extra={"communication_id": communication_id}
            )

    async def _send_list(self, tab, key: tuple, changed: "live.ListChanges", removals: dict) -> None:
        if changed.close_code is not None:
            await tab.close(code=changed.close_code)
            return
        subscription = tab.subscription
        if tab.channel_name not in self.tabs or subscription.state is None:
            return
        if live.list_key(tab.user_id, subscription.state) != key:
            return  # the tab shows another list since: its own catch-up brings what it needs
        parts, rows = [], set(tab.rows)
        for pk in changed.gone & rows:
            if pk not in removals:
                removals[pk] = live.removal_html(pk)
            parts.append(removals[pk])
            rows.discard(pk)
        for pk, html in changed.rows.items():
            parts.append(changed.selected.get(pk, html) if pk == subscription.open_id else html)
            rows.add(pk)
        if changed.empty and not rows and parts:
            parts.append(changed.empty)
        if changed.counts and tab.counts_key != changed.counts_key:  # only counts the page does not show yet
            tab.counts_key = changed.counts_key
            parts.append(changed.counts)
        tab.rows = frozenset(rows)
        if parts:
            await tab.deliver("\n".join(parts))

    def _counts_now(self, key: tuple) -> bool:
        """Leading edge now, trailing edge later: a burst of changes recounts once now and once at its end."""
        now = time.monotonic()
        elapsed = now - self.counts_at.get(key, float("-inf"))
        if elapsed >= COUNTS_INTERVAL:
            self.counts_at[key] = now
            timer = self.counts_timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            return True
        if key not in self.counts_timers:
            loop = asyncio.get_running_loop()
            self.counts_timers[key] = loop.call_later(COUNTS_INTERVAL - elapsed, self._counts_later, key)
        return False

    def _counts_later(self, key: tuple) -> None:
        self.counts_timers.pop(key, None)
        self.counts_due.add(key)
        self.counts_at.pop(key, None)  # so that the batch recounts it now
        self.wake.set()

    def _close_all(self, code: int) -> None:
        for tab in list(self.tabs.values()):
            tab.spawn_close(code)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (a web process runs one loop; each test scenario its own)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(get_channel_layer())
    return found
