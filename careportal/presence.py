"""Who is viewing a conversation and who is typing in it, kept in the Django cache (Redis in production, LocMem when
embedded) with expiry — never in one process's memory, so every web process sees the same people.

An entry per (communication, user) lives ``PRESENCE_TTL_SECONDS`` after the tab last said it is there (it says so
every ``LIVE_HEARTBEAT_SECONDS``); closing the tab removes it at once, a silent tab drops out when it expires.
A small index per communication lists the users to look up. "Typing" lasts ``TYPING_TTL_SECONDS`` after the last
keystroke the tab reported.

"Replying" (issue 14): the user types, or holds an unsent draft, in the communication. It lasts while their tab is
there, and ends at once on send or when the box is emptied. Lists show it on the row ("X is replying"): each
communication keeps a small summary of who is replying (written with the announcement, ``changed``), so a page of
50 rows reads them all with one ``get_many`` (``with_replying``).
"""

import time
from collections.abc import Iterable
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
    is_replying: bool = False  # typing, or holding an unsent draft


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


def _state_key(communication_id: int) -> str:
    """What was last announced: the signature of who is there, and who is replying (read by lists)."""
    return f"presence:{communication_id}:announced"


def _timeout() -> int:
    return int(ttl() + GRACE_SECONDS)


def touch(
    communication_id: int, *, user, channel: str, typing: bool | None = None, drafting: bool | None = None
) -> None:
    """The user's tab (``channel``) shows the communication; ``typing`` True starts "typing…" (and replying), False
    ends it, None (a heartbeat) keeps it as it was. ``drafting``: the reply box holds a draft (True), is empty
    (False), or as it was (None)."""
    now = clock()
    key = _entry_key(communication_id, user.pk)
    previous = cache.get(key) or {}
    if typing is None:
        typing_until = previous.get("typing_until", 0.0)
    else:
        typing_until = now + typing_ttl() if typing else 0.0
    if drafting is None:
        drafting = bool(typing) or previous.get("drafting", False)
    entry = {
        "user_id": user.pk,
        "name": user.full_name,
        "initials": user.initials,
        "channel": channel,
        "expires_at": now + ttl(),
        "typing_until": typing_until,
        "drafting": drafting,
    }
    cache.set(key, entry, timeout=_timeout())
    _index_add(communication_id, user.pk, now + ttl())


def end_typing(communication_id: int, *, user_id: int) -> "Change":
    """The user sent, or emptied the box: "typing…" and replying end now (whichever of their tabs reported it);
    whether the people there changed (``changed``: then it is to be announced)."""
    key = _entry_key(communication_id, user_id)
    entry = cache.get(key)
    if entry is None or (entry.get("typing_until", 0.0) <= clock() and not entry.get("drafting")):
        return Change()
    cache.set(key, {**entry, "typing_until": 0.0, "drafting": False}, timeout=_timeout())
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
    return _people(_entries(communication_id), clock())


def _people(entries, now: float) -> list[Present]:
    people = [
        Present(
            user_id=entry["user_id"],
            name=entry["name"],
            initials=entry["initials"],
            is_typing=entry["typing_until"] > now,
            is_replying=entry["typing_until"] > now or entry.get("drafting", False),
        )
        for entry in entries
        if entry["expires_at"] > now
    ]
    return sorted(people, key=lambda p: (p.name.lower(), p.user_id))


def _entries(communication_id: int) -> list[dict]:
    user_ids = list((cache.get(_index_key(communication_id)) or {}).keys())
    if not user_ids:
        return []
    return list(cache.get_many([_entry_key(communication_id, uid) for uid in user_ids]).values())


def presence_for(communication_id: int, *, viewer_id: int) -> PresenceView:
    """What ``viewer_id`` sees: everyone else there (a viewer never sees themselves)."""
    return PresenceView(viewers=tuple(p for p in present(communication_id) if p.user_id != viewer_id))


@dataclass(frozen=True)
class Change:
    """What ``changed`` found: whether who is there (or typing, or replying) changed — true as a whole when it did —
    and whether who is replying did (then every list showing the row is told, ``inbox.events.replying_changed``)."""

    people: bool = False
    replying: bool = False

    def __bool__(self) -> bool:
        return self.people


def changed(communication_id: int) -> Change:
    """Whether who is there (or who is typing or replying) differs from what was last announced; records the new
    state, with the summary of who is replying that lists read (``with_replying``).

    Any web process may notice a change (a tab's own action, a heartbeat finding an expired entry); the stored
    signature makes the announcement happen once rather than once per viewer.
    """
    now = clock()
    entries = [e for e in _entries(communication_id) if e["expires_at"] > now]
    people = _people(entries, now)
    signature = [[p.user_id, p.is_typing, p.is_replying] for p in people]
    expiry = {e["user_id"]: e["expires_at"] for e in entries}
    replying = [[p.user_id, p.name, expiry[p.user_id]] for p in people if p.is_replying]
    key = _state_key(communication_id)
    announced = cache.get(key) or {}
    before = announced.get("signature")
    if before == signature and announced.get("replying") == replying:
        return Change()
    # Heartbeats move a replier's expiry on: the summary follows (so a row never shows them gone while they are
    # there), without announcing anything.
    cache.set(key, {"signature": signature, "replying": replying}, timeout=_timeout() * 2)
    if before == signature:
        return Change()
    was_replying = [row[0] for row in announced.get("replying", ())]
    return Change(people=True, replying=was_replying != [row[0] for row in replying])


def replying_among(communication_ids: Iterable[int]) -> dict[int, list[tuple[int, str, float]]]:
    """Who is replying in each of the communications, as last announced (``(user id, name, until)``, until their
    entry expires): one ``get_many`` for them all."""
    ids = list(communication_ids)
    if not ids:
        return {}
    now = clock()
    found = cache.get_many([_state_key(pk) for pk in ids])
    out = {}
    for pk in ids:
        rows = [
            (uid, name, until) for uid, name, until in (found.get(_state_key(pk)) or {}).get("replying", ())
        ]
        rows = [row for row in rows if row[2] > now]
        if rows:
            out[pk] = rows
    return out


def with_replying(rows, *, viewer_id: int) -> None:
    """Set ``replying_names`` on each list row (a Communication): the others replying in it, as ``viewer_id`` sees
    it (a viewer never sees themselves). One cache call for the whole page."""
    replying = replying_among(int(c.pk) for c in rows)
    for c in rows:
        c.replying_names = tuple(name for uid, name, _ in replying.get(int(c.pk), ()) if uid != viewer_id)
