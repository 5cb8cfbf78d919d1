"""Who is viewing a conversation and who is typing in it, kept in the Django cache (Redis in production, LocMem when
embedded) with expiry — never in one process's memory, so every web process sees the same people.

An entry per (communication, user) lives ``PRESENCE_TTL_SECONDS`` after the tab last said it is there (it says so
every ``LIVE_HEARTBEAT_SECONDS``); closing the tab removes it at once, a silent tab drops out when it expires.
A small index per communication lists the users to look up. "Typing" lasts ``TYPING_TTL_SECONDS`` after the last
keystroke the tab reported.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

# Entries outlive their expiry a little in the cache, so a read can tell "expired" from "never there".
GRACE_SECONDS = 5


def clock() -> float:
    """Seconds since the epoch; tests replace it to move time forward."""
    return time.time()


def ttl() -> float:
    return float(getattr(settings, "PRESENCE_TTL_SECONDS", 30))


def typing_ttl() -> float:
    return float(getattr(settings, "TYPING_TTL_SECONDS", 6))


@dataclass(frozen=True)
class Present:
    user_id: int
    name: str
    initials: str
    is_typing: bool


@dataclass(frozen=True)
class PresenceView:
    """What one viewer sees: the others viewing, and those of them typing."""

    viewers: tuple[Present, ...] = ()

    @property
    def typing(self) -> tuple[Present, ...]:
        return tuple(p for p in self.viewers if p.is_typing)


def _entry_key(communication_id: int, user_id: int) -> str:
    return f"presence:{communication_id}:user:{user_id}"


def _index_key(communication_id: int) -> str:
    return f"presence:{communication_id}:index"


def _signature_key(communication_id: int) -> str:
    return f"presence:{communication_id}:signature"


def _timeout() -> int:
    return int(ttl() + GRACE_SECONDS)


def touch(communication_id: int, *, user, channel: str, typing: bool | None = None) -> None:
    """The user's tab (``channel``) shows the communication; ``typing`` True starts "typing…", False ends it, None
    (a heartbeat) keeps it as it was."""
    now = clock()
    key = _entry_key(communication_id, user.pk)
    previous = cache.get(key) or {}
    if typing is None:
        typing_until = previous.get("typing_until", 0.0)
    else:
        typing_until = now + typing_ttl() if typing else 0.0
    entry = {
        "user_id": user.pk,
        "name": user.full_name,
        "initials": user.initials,
        "channel": channel,
        "expires_at": now + ttl(),
        "typing_until": typing_until,
    }
    cache.set(key, entry, timeout=_timeout())
    _index_add(communication_id, user.pk, now + ttl())


def end_typing(communication_id: int, *, user_id: int) -> bool:
    """The user sent, or emptied the box: "typing…" ends now (whichever of their tabs reported it); whether the
    people there changed (``changed``: then it is to be announced)."""
    key = _entry_key(communication_id, user_id)
    entry = cache.get(key)
    if entry is None or entry.get("typing_until", 0.0) <= clock():
        return False
    cache.set(key, {**entry, "typing_until": 0.0}, timeout=_timeout())
    return changed(communication_id)


def leave(communication_id: int, *, user_id: int, channel: str) -> None:
    """The tab closed or moved to another conversation. Another tab of the same user that wrote the entry last
    keeps it (it refreshes it on its next heartbeat anyway)."""
    key = _entry_key(communication_id, user_id)
    entry = cache.get(key)
    if entry is not None and entry.get("channel") == channel:
        cache.delete(key)
        _index_remove(communication_id, user_id)


def _index_add(communication_id: int, user_id: int, expires_at: float) -> None:
    # The cache has no atomic "add to a set" common to Redis and LocMem: write, read back, and retry when a
    # concurrent writer overwrote us. A lost race costs at most one heartbeat of invisibility.
    key = _index_key(communication_id)
    for _ in range(3):
        now = clock()
        index = {uid: at for uid, at in (cache.get(key) or {}).items() if at > now}
        index[user_id] = expires_at
        cache.set(key, index, timeout=_timeout())
        if user_id in (cache.get(key) or {}):
            return


def _index_remove(communication_id: int, user_id: int) -> None:
    key = _index_key(communication_id)
    index = cache.get(key) or {}
    if index.pop(user_id, None) is not None:
        cache.set(key, index, timeout=_timeout())


def present(communication_id: int) -> list[Present]:
    """Everyone whose entry has not expired, in name order."""
    now = clock()
    user_ids = list((cache.get(_index_key(communication_id)) or {}).keys())
    if not user_ids:
        return []
    entries = cache.get_many([_entry_key(communication_id, uid) for uid in user_ids]).values()
    people = [
        Present(
            user_id=entry["user_id"],
            name=entry["name"],
            initials=entry["initials"],
            is_typing=entry["typing_until"] > now,
        )
        for entry in entries
        if entry["expires_at"] > now
    ]
    return sorted(people, key=lambda p: (p.name.lower(), p.user_id))


def presence_for(communication_id: int, *, viewer_id: int) -> PresenceView:
    """What ``viewer_id`` sees: everyone else there (a viewer never sees themselves)."""
    return PresenceView(viewers=tuple(p for p in present(communication_id) if p.user_id != viewer_id))


def changed(communication_id: int) -> bool:
    """Whether who is there (or who is typing) differs from what was last announced; records the new state.

    Any web process may notice a change (a tab's own action, a heartbeat finding an expired entry); the stored
    signature makes the announcement happen once rather than once per viewer.
    """
    signature = [[p.user_id, p.is_typing] for p in present(communication_id)]
    key = _signature_key(communication_id)
    if cache.get(key) == signature:
        return False
    cache.set(key, signature, timeout=_timeout() * 2)
    return True
