"""Designer forms. They parse input; the services decide what is allowed (and say why when it is not).

Every form that edits the draft carries the draft ``revision`` it was built from (optimistic concurrency).
"""

from django import forms

from .models import MenuItem, Policy, TemplateChannel

MENU_HELP = {
    MenuItem.HOME: "The start page with the user's summary cards.",
    MenuItem.INBOX: "My Inbox. The Care Team and All Patients inboxes also need a policy.",
    MenuItem.PATIENTS: "The patient list, profiles and communication centers the user may see.",
}
POLICY_HELP = {
    Policy.INBOX_CARE_TEAM: "Care Team Inbox: communications of patients whose care team includes the user.",
    Policy.INBOX_FULL_PATIENT: "Care Team and All Patients inboxes: every patient in the user's regions.",
    Policy.INBOX_API: "API clients with this role read and act on all inboxes.",
    Policy.EDIT_PATIENT_PROFILE: "Edit the profile of a patient the user can see.",
    Policy.DESIGNER: "Open drafts, edit roles, menus, policies and templates, and publish.",
    Policy.ADMINISTRATOR: "The Admin Portal: users, feature settings, lines, addresses, audit log.",
}


class RevisionForm(forms.Form):
    """Publish, discard and remove actions: only the revision the page showed."""

    revision = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class NewRoleForm(RevisionForm):
    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    key = forms.SlugField(
        max_length=60,
        help_text="Users are assigned to a role by this key; it never changes once the role exists.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "e.g. care-coordinator"}),
    )


class RoleForm(RevisionForm):
    name = forms.CharField(max_length=120)
    is_active = forms.BooleanField(
        required=False,
        label="Active",
        help_text="An inactive role gives its users no Care Portal pages and no policies.",
    )
    menu = forms.MultipleChoiceField(
        choices=MenuItem.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    policies = forms.MultipleChoiceField(
        choices=Policy.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    def menu_rows(self):
        return _rows(self, "menu", MenuItem, MENU_HELP)

    def policy_rows(self):
        return _rows(self, "policies", Policy, POLICY_HELP)


def _rows(form, name: str, choices, helps) -> list[dict]:
    """Checkbox rows with a description each, for the toggle lists of the role page."""
    value = form[name].value() or []
    return [
        {
            "value": choice.value,
            "label": choice.label,
            "help": helps[choice],
            "id": f"id_{name}_{choice.value}",
            "name": name,
            "checked": choice.value in value,
        }
        for choice in choices
    ]


class TemplateForm(RevisionForm):
    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    channel = forms.ChoiceField(choices=TemplateChannel.choices, widget=forms.RadioSelect)
    subject = forms.CharField(
        max_length=200, required=False, help_text="Used when the template is inserted in an email."
    )
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "true"}))


class PreviewForm(forms.Form):
    """The live preview posts the editor's fields as they are (nothing is validated or saved)."""

    channel = forms.CharField(required=False)
    subject = forms.CharField(required=False)
    body = forms.CharField(required=False)
