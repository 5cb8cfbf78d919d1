"""Designer test people, added to the shared published configuration of tests/conftest.py:

- ``designer``: a user whose role holds the Designer policy (Home only in the menu);
- ``coordinator``: a Care Coordinator, whose published menu has no Inbox (as in the demo).
"""

import pytest

from designer.models import MenuItem, Policy
from tests.factories import RoleFactory, UserFactory


@pytest.fixture
def designer(published_config):
    version, roles = published_config
    roles["designer"] = RoleFactory(
        version=version,
        key="designer",
        name="Configuration Designer",
        menu=[MenuItem.HOME],
        policies=[Policy.DESIGNER],
    )
    return UserFactory(username="designer", first_name="Devin", last_name="Shah", role="designer")


@pytest.fixture
def coordinator(published_config):
    version, roles = published_config
    roles["coordinator"] = RoleFactory(
        version=version,
        key="care-coordinator",
        name="Care Coordinator",
        menu=[MenuItem.HOME, MenuItem.PATIENTS],
    )
    return UserFactory(
        username="coordinator", first_name="Carlos", last_name="Mendes", role="care-coordinator"
    )


@pytest.fixture
def other_designer(designer):
    return UserFactory(username="designer2", first_name="Dana", last_name="Other", role="designer")
