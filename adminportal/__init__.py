"""Administration: the user model and its role, feature settings, and the Admin Portal pages."""
