"""Shared test set-up: a published configuration and a few named people used by every test module.

- ``nurse``: a care-team nurse (Inbox + Inbox Care Team) on ``patient``'s care team, its primary contact.
- ``colleague``: Cara, a second nurse on ``patient``'s care team (not the primary contact).
- ``other_nurse``: same role, on nobody's care team (the "nurse off the team").
- ``lead``: a team lead whose role holds Inbox Full Patient.
- ``outsider``: a user whose role has no Inbox and who is on no care team.
- ``administrator`` / ``designer``: roles holding only the Administrator / Designer policy.
- ``coordinator``: a Care Coordinator, whose published menu has no Inbox (as in the demo).
"""

import pytest
from django.db import connections
from django.db.backends.base.operations import BaseDatabaseOperations
from django.test import override_settings

from designer.models import MenuItem, Policy
from tests.factories import (
    CareTeamMemberFactory,
    ConfigVersionFactory,
    PatientFactory,
    RoleFactory,
    UserFactory,
)

# The test databases' roles and flush (tests/database.py): its marker, fixture and collection hook.
pytest_plugins = ["tests.database"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory, request):
    """On SQLite the test database is a file (in this session's temporary directory) rather than memory, so that
    other processes can share it: the real-time browser test runs two daphne web processes on it.

    With MIGRATION_DATABASE_URL (PostgreSQL), the test database is created and migrated as that owner."""
    from django.conf import settings

    from tests.database import LEAST_PRIVILEGE, LeastPrivilege

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")
    roles = request.config.stash[LEAST_PRIVILEGE] = LeastPrivilege(connections["default"])
    roles.owner_settings_before_setup()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, request):
    """Once migrated, the tests connect as the DATABASE_URL role (least privilege; ``tests.database``), and the flush
    between transactional tests lifts the audit log's guard for its own transaction."""
    from tests.database import LEAST_PRIVILEGE

    roles = request.config.stash[LEAST_PRIVILEGE]
    with pytest.MonkeyPatch.context() as patch:
        flush = roles.patched_flush(BaseDatabaseOperations.execute_sql_flush)
        patch.setattr(BaseDatabaseOperations, "execute_sql_flush", flush)
        with django_db_blocker.unblock():
            roles.start()
        yield
        with django_db_blocker.unblock():
            roles.stop()


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Real hashers are slow on purpose; tests create many users."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _fresh_cached_settings():
    """Feature settings read on every request are cached (adminportal.idle); a test's rolled-back rows must not
    leave their cached copy to the next test."""
    from adminportal.idle import forget_setting
    from designer.selectors import forget_published_roles

    forget_setting()
    forget_published_roles()
    yield
    forget_setting()
    forget_published_roles()


@pytest.fixture
def warm_caches():
    """Fill the caches every signed-in request reads (published roles, the idle-timeout setting), for tests that
    compare query counts: otherwise the first request of a test pays for them and looks more expensive."""

    def warm():
        from adminportal.idle import _setting
        from designer.selectors import _published_roles

        _published_roles()
        _setting()

    return warm


@pytest.fixture(autouse=True, scope="session")
def _eager_celery():
    """Tasks run in-process in tests, with or without REDIS_URL, so every test is deterministic."""
    from inbox_project.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture(autouse=True, scope="session")
def _in_memory_channel_layer():
    """In-process tests use the in-memory channel layer, with or without REDIS_URL: a Redis connection pool is bound
    to one event loop, and each ``async_to_sync`` call runs its own. Tests of the Redis layer across processes
    (tests/e2e/test_realtime_two_processes.py) start their own servers with REDIS_URL."""
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        yield


@pytest.fixture(autouse=True, scope="session")
def _plain_http():
    """Production settings redirect to HTTPS and mark cookies Secure; the test client and live server speak HTTP.

    Session-scoped so it is in force before the (session-scoped) live server builds its middleware.
    """
    from django.conf import settings

    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        yield


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }


@pytest.fixture
def local_outboxes(settings):
    """Outbound email and SMS kept in memory (``mail.outbox``, ``LocmemSmsBackend.outbox``), the SMS one emptied
    before and after the test."""
    from inbox.delivery import LocmemSmsBackend

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "inbox.delivery.LocmemSmsBackend"
    LocmemSmsBackend.outbox.clear()
    yield
    LocmemSmsBackend.outbox.clear()


@pytest.fixture
def published_config(db):
    version = ConfigVersionFactory()
    roles = {
        "nurse": RoleFactory(
            version=version,
            key="care-nurse",
            name="Care Team Nurse",
            menu=[MenuItem.HOME, MenuItem.INBOX, MenuItem.PATIENTS],
            policies=[Policy.INBOX_CARE_TEAM],
        ),
        "lead": RoleFactory(
            version=version,
            key="team-lead",
            name="Team Lead",
            menu=[MenuItem.HOME, MenuItem.INBOX, MenuItem.PATIENTS],
            policies=[Policy.INBOX_FULL_PATIENT, Policy.EDIT_PATIENT_PROFILE],
        ),
        "outsider": RoleFactory(version=version, key="front-desk", name="Front Desk", menu=[MenuItem.HOME]),
    }
    return version, roles


@pytest.fixture
def patient(db):
    return PatientFactory(first_name="Maria", last_name="Lopez")


@pytest.fixture
def nurse(published_config, patient):
    user = UserFactory(username="nurse", first_name="Nora", last_name="Nurse", role="care-nurse")
    CareTeamMemberFactory(patient=patient, user=user, is_primary_contact=True)
    return user


@pytest.fixture
def colleague(published_config, patient):
    """Cara, a second nurse on Maria's care team (she sees Maria; she is not the primary contact)."""
    user = UserFactory(username="cara", first_name="Cara", last_name="Colleague", role="care-nurse")
    CareTeamMemberFactory(patient=patient, user=user)
    return user


@pytest.fixture
def other_nurse(published_config):
    return UserFactory(username="other-nurse", first_name="Otto", last_name="Other", role="care-nurse")


@pytest.fixture
def lead(published_config):
    return UserFactory(username="lead", first_name="Lena", last_name="Lead", role="team-lead")


@pytest.fixture
def outsider(published_config):
    return UserFactory(username="outsider", first_name="Oscar", last_name="Outside", role="front-desk")


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests run last: Playwright's sync API keeps an event loop running in the main thread for the rest of
    the session, and tests that drive Channels with ``async_to_sync`` cannot run after it starts."""
    browser_fixtures = {"page", "browser", "context", "playwright"}

    def drives_a_browser(item) -> bool:
        return "tests/e2e/" in str(item.fspath) or bool(
            browser_fixtures & set(getattr(item, "fixturenames", ()))
        )

    items.sort(key=drives_a_browser)
