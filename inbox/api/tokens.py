"""API tokens: created for a user whose published role holds Inbox API, stored as a SHA-256 hash, shown once,
revocable; ``last_used_at`` is written at most once a minute."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from adminportal.models import ApiToken
from designer.models import Policy
from designer.selectors import has_policy
from inbox import audit

TOKEN_PREFIX = "cit_"  # "Care Inbox token": recognisable in logs and by secret scanners
DISPLAY_PREFIX_LENGTH = 12
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(Exception):
    """A refused token action; ``str(error)`` is fit to show."""


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def create_token(*, actor, user, name: str, request=None) -> tuple[ApiToken, str]:
    """A new token for ``user`` (who must hold Inbox API); returns the row and the token, which is never stored."""
    name = " ".join((name or "").split())[:80]
    if not name:
        raise TokenError("Name the integration this token is for.")
    if not user.is_active or not has_policy(user, Policy.INBOX_API):
        raise TokenError(f"{user.full_name}'s role does not hold the Inbox API policy.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits of entropy
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=raw[:DISPLAY_PREFIX_LENGTH],
        secret_hash=hash_token(raw),
        created_by=actor,
    )
    audit.record(
        actor=actor, action=audit.Action.SETTING_CHANGED, request=request, obj=token,
        detail={"change": "api_token.created", "user": user.pk, "name": name, "prefix": token.prefix},
    )  # fmt: skip
    return token, raw


@transaction.atomic
def revoke_token(*, actor, token: ApiToken, request=None) -> ApiToken:
    """Revoke at once: the next request with it is refused (401). Revoking twice changes nothing."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit.record(
        actor=actor, action=audit.Action.SETTING_CHANGED, request=request, obj=token,
        detail={"change": "api_token.revoked", "user": token.user_id, "name": token.name, "prefix": token.prefix},
    )  # fmt: skip
    return token


def token_for(raw: str) -> ApiToken | None:
    """The live token ``raw`` names, or ``None`` (unknown, revoked, or its user deactivated).

    The lookup is by the hash (an index), and the stored hash is compared again in constant time, so neither the
    database nor Python leaks how much of a guess was right."""
    if not raw or len(raw) > 200:
        return None
    digest = hash_token(raw)
    token = ApiToken.objects.select_related("user").filter(secret_hash=digest).first()
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        return None
    if token.revoked_at is not None or not token.user.is_active:
        return None
    return token


def touch(token: ApiToken) -> None:
    """Record use, at most once a minute per token (one UPDATE, never on every request)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
