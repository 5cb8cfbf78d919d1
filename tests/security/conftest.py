"""The access matrix's people and seeded world, shared by the matrix and the property-based hostile-input test."""

import pytest
from django.test import Client

from designer.models import MenuItem, Policy
from tests.factories import RoleFactory, UserFactory
from tests.security.matrix_cases import build_world

HOOK_SECRET = "matrix-email-secret"
TWILIO_TOKEN = "matrix-twilio-token"


@pytest.fixture
def hooks_configured(settings):
    """Provider webhook secrets known to the matrix (its signed calls use them), in-memory email, an empty cache."""
    settings.INBOUND_EMAIL_SECRET = HOOK_SECRET
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_ACCOUNT_SID = "ACmatrix"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core.cache import cache

    cache.clear()  # API throttles and presence live in the cache


@pytest.fixture
def people(nurse, lead, outsider, designer, administrator, published_config):
    version, _roles = published_config
    RoleFactory(
        version=version,
        key="integration",
        name="Integration",
        menu=[MenuItem.INBOX],
        policies=[Policy.INBOX_API, Policy.INBOX_CARE_TEAM],
    )
    api_user = UserFactory(username="matrix-api", role="integration")
    api_outsider = UserFactory(username="matrix-api-outsider", role="integration")
    superuser = UserFactory(username="matrix-root", is_staff=True, is_superuser=True)
    return {
        "nurse": nurse,
        "lead": lead,
        "outsider": outsider,
        "designer": designer,
        "administrator": administrator,
        "superuser": superuser,
        "api": api_user,
        "api_outsider": api_outsider,
    }


@pytest.fixture
def world(people):
    from tests.factories import CareTeamMemberFactory

    built = build_world(nurse=people["nurse"], api_user=people["api"])
    CareTeamMemberFactory(patient=built.patient, user=people["api"])
    return built


def client_for(user_key: str, people) -> Client:
    client = Client()
    if user_key in ("api", "api_outsider"):
        from inbox.api.tokens import create_token

        _, raw = create_token(actor=None, user=people[user_key], name="matrix")
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    elif user_key in people:
        client.force_login(people[user_key])
    return client
