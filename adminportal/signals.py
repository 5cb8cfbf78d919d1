"""Framework glue: sign-in, sign-out and failed sign-in become audit events."""

import math

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from inbox.audit import Action, record


@receiver(user_logged_in)
def audit_sign_in(sender, request, user, **kwargs):
    record(actor=user, action=Action.SIGN_IN, request=request)


@receiver(user_logged_out)
def audit_sign_out(sender, request, user, **kwargs):
    if user is not None:
        # ``sign_out_detail`` says why when the user did not sign out themselves (adminportal.idle: idle timeout).
        record(
            actor=user,
            action=Action.SIGN_OUT,
            request=request,
            detail=getattr(request, "sign_out_detail", None),
        )


@receiver(user_login_failed)
def audit_sign_in_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    record(
        actor=None,
        actor_label=username,
        action=Action.SIGN_IN_FAILED,
        request=request,
        detail={"username": username},
    )


@receiver(post_save, sender="adminportal.FeatureSetting")
@receiver(post_delete, sender="adminportal.FeatureSetting")
def forget_cached_settings(sender, **kwargs):
    from .idle import forget_setting

    forget_setting()


@receiver(user_logged_in)
def start_the_idle_clock(sender, request, user, **kwargs):
    """Signing in is activity: the session starts with its stamp (written with the sign-in's own session save, not
    by the first page after it), and the timeout setting is read into the cache once here."""
    from .idle import LAST_ACTIVITY, _now, idle_limit_minutes

    if request is not None and hasattr(request, "session"):
        request.session[LAST_ACTIVITY] = math.floor(_now())
    idle_limit_minutes()
