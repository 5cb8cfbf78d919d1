"""Sign-in lockout glue for django-axes: the backend that checks it, the page a locked-out person sees, and the
audit event a lockout writes. Settings: ``AXES_*`` in ``inbox_project/settings.py``."""

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.dispatch import receiver
from django.template.response import TemplateResponse

from inbox.audit import Action, record


class SignInLockoutBackend(AxesStandaloneBackend):
    """Refuses a locked-out username+address before any password is checked (first in AUTHENTICATION_BACKENDS).

    ``authenticate()`` without a request (a management command, the test client's ``login()``) is no remote sign-in
    attempt: there is no address to count or lock, so this backend stands aside and the next backend decides, as
    Django does when a backend does not apply. Every sign-in form passes the request."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def cooloff_minutes(request=None) -> int:
    cool_off = get_cool_off(request)
    return max(1, round(cool_off.total_seconds() / 60)) if cool_off else 0


def lockout_response(request, original_response=None, credentials=None):
    """The sign-in page again (429), saying plainly why signing in is refused and for how long."""
    username = get_client_username(request, credentials) or ""
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "locked_out": True,
        "locked_username": username,
        "cooloff_minutes": cooloff_minutes(request),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "next": request.POST.get("next", "") if request.method == "POST" else request.GET.get("next", ""),
    }
    return TemplateResponse(
        request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE
    ).render()


@receiver(user_locked_out)
def audit_lockout(sender, request, username, ip_address, **kwargs):
    """A lockout is a sign-in failure the audit log names as such (the failed attempts are audited one by one)."""
    name = str(username or "")[:150]
    record(
        actor=None,
        actor_label=name,
        action=Action.SIGN_IN_FAILED,
        request=request,
        detail={"username": name, "locked_out": True, "failure_limit": settings.AXES_FAILURE_LIMIT},
    )
