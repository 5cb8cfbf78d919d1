"""Real-time hints published after commit. The database is the truth; an event only says "this changed".

Groups are keyed by communication, patient and user; consumers join only groups the access rule allows. Linked
communications are also announced to the All Patients group: holders of Inbox Full Patient list every linked
communication they may see (All Patients → Directed), and their consumer checks each one against the access rule
before anything reaches the browser.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def group_for_communication(communication_id: int) -> str:
    return f"communication.{communication_id}"


def group_for_patient(patient_id: int) -> str:
    return f"patient.{patient_id}"


def group_for_user(user_id: int) -> str:
    return f"user.{user_id}"


UNRECOGNIZED_GROUP = "inbox.unrecognized"
ALL_PATIENTS_GROUP = "inbox.all-patients"


def _send(groups: list[str], event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for group in groups:
            try:
                await layer.group_send(group, event)
            except Exception:  # a hint that cannot be delivered must never break the change it follows
                logger.exception(
                    "could not publish real-time event", extra={"group": group, "event": event["type"]}
                )

    # One async_to_sync for all the groups: outside an event loop each call starts a loop and a Redis
    # connection of its own (~2.5 ms of CPU each), which was a third of a worker's time per inbound message.
    try:
        async_to_sync(send_all)()
    except Exception:
        logger.exception("could not publish real-time event", extra={"event": event["type"]})


def publish_communication_changed(communication, *, kind: str, user_ids: tuple[int, ...] = ()) -> None:
    """Register, for after commit, a ``communication.changed`` event (kind: message, status, assignment, link…)."""
    groups = [group_for_communication(communication.pk)]
    groups.append(
        group_for_patient(communication.patient_id) if communication.patient_id else UNRECOGNIZED_GROUP
    )
    groups.extend(group_for_user(uid) for uid in user_ids if uid)
    event = {"type": "communication.changed", "communication_id": communication.pk, "kind": kind}
    if communication.patient_id:
        groups.append(ALL_PATIENTS_GROUP)
    transaction.on_commit(lambda: _send(groups, event))
    from inbox.api.webhooks import communication_changed  # outbound webhooks: queued after commit, same hint

    communication_changed(communication, kind=kind)
