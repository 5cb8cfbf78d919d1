"""The inboxes and their folders as named values (DESIGN.md: Inboxes and folders)."""

from django.db import models


class InboxKind(models.TextChoices):
    MY = "my", "My Inbox"
    CARE_TEAM = "care-team", "Care Team Inbox"
    ALL_PATIENTS = "all-patients", "All Patients Inbox"


class Folder(models.TextChoices):
    ASSIGNED_TO_ME = "my/assigned", "Assigned to me"
    PRIMARY_CONTACT = "my/primary-contact", "Primary Contact"
    MY_UNRECOGNIZED = "my/unrecognized", "Unrecognized"
    SENT = "my/sent", "Sent"
    CARE_TEAM_DIRECTED = "care-team/directed", "Directed"
    CARE_TEAM_UNRECOGNIZED = "care-team/unrecognized", "Unrecognized"
    ALL_DIRECTED = "all-patients/directed", "Directed"
    ALL_UNRECOGNIZED = "all-patients/unrecognized", "Unrecognized"

    @property
    def inbox(self) -> InboxKind:
        return InboxKind(self.value.split("/")[0])

    @property
    def slug(self) -> str:
        return self.value.split("/")[1]

    @property
    def implies_visibility(self) -> bool:
        """Every communication this folder's rule selects is visible to its user by the access rule itself: on one
        of the user's care teams (directly or as a candidate), or Unrecognized and assigned to the user."""
        return self in {
            Folder.PRIMARY_CONTACT,
            Folder.MY_UNRECOGNIZED,
            Folder.CARE_TEAM_DIRECTED,
            Folder.CARE_TEAM_UNRECOGNIZED,
        }

    @property
    def full_label(self) -> str:
        """The folder with its inbox, as a search of all inboxes tags a row: "Care Team · Unrecognized"."""
        inbox = self.inbox.label.removesuffix(" Inbox") if self.inbox != InboxKind.MY else self.inbox.label
        return f"{inbox} · {self.label}"

    @property
    def is_shared(self) -> bool:
        """Care Team and All Patients folders offer "all" or "unassigned only"."""
        return self.inbox != InboxKind.MY


FOLDERS_BY_INBOX = {kind: [folder for folder in Folder if folder.inbox == kind] for kind in InboxKind}
