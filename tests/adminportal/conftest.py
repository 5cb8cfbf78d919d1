"""Admin Portal test people, added to the shared published configuration of tests/conftest.py:

- ``administrator``: a user whose role holds the Administrator policy;
- ``designer``: a user whose role holds only the Designer policy (not an administrator).
"""

import pytest

from designer.models import MenuItem, Policy
from tests.factories import RoleFactory, UserFactory


@pytest.fixture
def administrator(published_config):
    version, roles = published_config
    roles["administrator"] = RoleFactory(
        version=version,
        key="administrator",
        name="Administrator",
        menu=[MenuItem.HOME],
        policies=[Policy.ADMINISTRATOR],
    )
    return UserFactory(username="admin", first_name="Alex", last_name="Morgan", role="administrator")


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
