"""Real-time hints published after commit. The database is the truth; an event only says "this changed".

``communication.changed`` goes to the communication's own group (its live-chat page, and the Care Portal tabs
that show it) and to ``LIVE_GROUP``, which each web process's hub (``careportal.hub``) joins once: the hub hears
every change once and renders it for the viewers its tabs show, each checked against the access rule before
anything reaches a browser. A hint names a communication and what kind of change it was, never patient data.
Notifications go to the user's own group.
"""

import asyncio
import json
import logging
import os
import threading
from contextlib import contextmanager
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)
PUBLISH_TIMEOUT_SECONDS = 10


def group_for_communication(communication_id: int) -> str:
    return f"communication.{communication_id}"


def group_for_user(user_id: int) -> str:
    return f"user.{user_id}"


LIVE_GROUP = "inbox.live"


# Hints sent while ``batched()`` is active wait here and go out together when it ends.
_collected: ContextVar[list | None] = ContextVar("collected_hints", default=None)


@contextmanager
def batched():
    """Send the hints of everything committed inside the block together when it ends, each distinct one once.

    Used by batch ingestion: one publishing round for a whole batch instead of one per message. Hints of a
    transaction that rolled back never reach the collection (they are sent from ``on_commit`` hooks).
    """
    token = _collected.set([])
    try:
        yield
    finally:
        pending = _collected.get()
        _collected.reset(token)
        if pending:
            _publish(pending)


def _send(groups: list[str], event: dict) -> None:
    """Send one hint to ``groups`` now (called after commit), or add it to the batch being collected."""
    pending = _collected.get()
    if pending is not None:
        pending.extend((group, event) for group in groups)
        return
    _publish([(group, event) for group in groups])


def _publish(items: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    distinct, seen = [], set()
    for group, event in items:
        key = (group, json.dumps(event, sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            distinct.append((group, event))

    async def send_all() -> None:
        for group, event in distinct:
            try:
                await layer.group_send(group, event)
            except Exception:  # a hint that cannot be delivered must never break the change it follows
                logger.exception(
                    "could not publish real-time event", extra={"group": group, "event": event["type"]}
                )

    # Outside an event loop each async_to_sync starts a loop and a Redis connection of its own (~2.5 ms of CPU);
    # a Celery worker process therefore publishes from one loop of its own that keeps its connection.
    try:
        if _own_loop["enabled"]:
            future = asyncio.run_coroutine_threadsafe(send_all(), _loop())
            try:
                future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
            except TimeoutError:
                future.cancel()
                raise
        else:
            async_to_sync(send_all)()
    except Exception:
        logger.exception("could not publish real-time events", extra={"count": len(distinct)})


_own_loop: dict = {"enabled": False, "loop": None, "pid": None}
_own_loop_lock = threading.Lock()


def use_own_loop() -> None:
    """Publish from an event loop running in a thread of this process (Celery worker processes call this once)."""
    _own_loop["enabled"] = True


def _loop() -> asyncio.AbstractEventLoop:
    """This process's publishing loop, started on first use (and again in a forked child, which has no thread)."""
    with _own_loop_lock:
        loop = _own_loop["loop"]
        if loop is None or _own_loop["pid"] != os.getpid() or loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-hints", daemon=True).start()
            _own_loop.update(loop=loop, pid=os.getpid())
        return loop


def presence_changed(communication_id: int) -> tuple[str, dict]:
    """The group and hint saying who is viewing or typing in the communication changed (its viewers re-read it
    from the cache). Sent by sockets (``careportal.consumers``) and by views (``publish_presence_changed``)."""
    return group_for_communication(communication_id), {
        "type": "presence.changed",
        "communication_id": communication_id,
    }


def replying_changed(communication_id: int) -> tuple[str, dict]:
    """The group and hint saying who is replying in the communication changed: every process's hub hears it once
    and brings the lists showing the row their "… is replying" marker (``careportal.hub``)."""
    return LIVE_GROUP, {"type": "replying.changed", "communication_id": communication_id}


def presence_hints(communication_id: int, *, replying: bool = False) -> list[tuple[str, dict]]:
    """``presence_changed``, and ``replying_changed`` when who is replying changed too."""
    hints = [presence_changed(communication_id)]
    return [*hints, replying_changed(communication_id)] if replying else hints


def publish_presence_changed(communication_id: int, *, replying: bool = False) -> None:
    """Now (not after a commit: presence lives in the cache), ``presence_hints``."""
    for group, event in presence_hints(communication_id, replying=replying):
        _send([group], event)


def publish_communication_changed(communication, *, kind: str, webhooks: bool = True) -> None:
    """Register, for after commit, a ``communication.changed`` event (kind: message, status, assignment, link…).

    ``webhooks=False`` only when the caller has just seen, in the same transaction, that no outbound webhook
    subscription is active (batch ingestion checks once per batch instead of once per message).
    """
    groups = [group_for_communication(communication.pk), LIVE_GROUP]
    event = {"type": "communication.changed", "communication_id": communication.pk, "kind": kind}
    transaction.on_commit(lambda: _send(groups, event))
    if not webhooks:
        return
    from inbox.api.webhooks import communication_changed  # outbound webhooks: queued after commit, same hint

    communication_changed(communication, kind=kind)
