"""People and clients of the Inbox API tests.

- ``api_user``: an integration whose role holds Inbox API and Inbox Care Team, on ``patient``'s care team.
- ``api_outsider``: the same role, on nobody's care team (sees no patient).
- ``nurse`` (shared conftest) has no Inbox API policy: 403.
"""

import pytest
from rest_framework.test import APIClient

from designer.models import MenuItem, Policy
from inbox.api.tokens import create_token
from tests.factories import CareTeamMemberFactory, RoleFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_role(published_config):
    version, roles = published_config
    roles["api"] = RoleFactory(
        version=version,
        key="integration",
        name="Integration",
        menu=[MenuItem.INBOX],
        policies=[Policy.INBOX_API, Policy.INBOX_CARE_TEAM],
    )
    return roles["api"]


@pytest.fixture
def api_user(api_role, patient):
    user = UserFactory(username="ehr-sync", first_name="EHR", last_name="Sync", role="integration")
    CareTeamMemberFactory(patient=patient, user=user)
    return user


@pytest.fixture
def api_outsider(api_role):
    return UserFactory(username="other-sync", first_name="Other", last_name="Sync", role="integration")


def bearer_client(user, name="test") -> APIClient:
    _, raw = create_token(actor=None, user=user, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_token = raw
    return client


@pytest.fixture
def api(api_user) -> APIClient:
    return bearer_client(api_user)


@pytest.fixture
def outsider_api(api_outsider) -> APIClient:
    return bearer_client(api_outsider)
