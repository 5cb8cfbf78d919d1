"""Designer: roles, role menus, security policies and message templates, versioned as drafts and published."""
