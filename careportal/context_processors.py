"""Sidebar and identity for every Care Portal page, read from the published configuration."""

from designer.models import MenuItem, Policy
from designer.selectors import role_access


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    access = role_access(user)
    return {"sidebar": sidebar_for(access), "role_access": access, "show_admin_link": user.is_staff}


def sidebar_for(access) -> list[dict]:
    """Menu items in a fixed order; only the ones the user's published role holds. The Designer and the Admin Portal
    follow the menu for users whose published role holds the Designer / Administrator policy."""
    entries = [
        (MenuItem.HOME, "careportal:home", "home"),
        (MenuItem.INBOX, "careportal:inbox", "inbox"),
        (MenuItem.PATIENTS, "careportal:patients", "users"),
    ]
    items = [
        {"key": key.value, "label": key.label, "url_name": url_name, "icon": icon}
        for key, url_name, icon in entries
        if key in access.menu
    ]
    tools = [
        (Policy.DESIGNER, "designer", "Designer", "designer:home", "sliders"),
        (Policy.ADMINISTRATOR, "adminportal", "Admin Portal", "adminportal:home", "shield"),
    ]
    items += [
        {"key": key, "label": label, "url_name": url_name, "icon": icon}
        for policy, key, label, url_name, icon in tools
        if policy in access.policies
    ]
    return items
