"""Domain errors raised by inbox services and selectors; views turn them into clear messages."""


class InboxError(Exception):
    """Base class: ``str(error)`` is a message fit to show the user."""


class FolderNotAllowed(InboxError):
    def __init__(self, folder):
        super().__init__(f"The folder {folder!s} is not available to you.")
        self.folder = folder


class ReplyNotAllowed(InboxError):
    pass


class NotPermitted(InboxError):
    pass


class UnlinkedRecipientNotConfirmed(ReplyNotAllowed):
    """A reply on an Unrecognized communication was not confirmed: the writer must say they mean to send to the raw
    sender address or number (``recipient``), which no patient's record holds. Nothing was sent."""

    def __init__(self, recipient: str):
        super().__init__(
            f"{recipient} is not linked to a patient. Link it first, or confirm that the reply goes to {recipient}."
        )
        self.recipient = recipient


class ConversationChanged(ReplyNotAllowed):
    """Others wrote in or changed the communication since the writer last saw it: nothing was sent. ``changes`` is
    what changed (``inbox.selectors.ChangesSince``), for the writer to review before sending anyway."""

    def __init__(self, changes):
        super().__init__("Someone else changed this conversation while you were writing. Nothing was sent.")
        self.changes = changes
