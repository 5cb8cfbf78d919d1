"""Test databases under the production roles, and their flush past the audit log's guard.

With MIGRATION_DATABASE_URL set (CI), the test database is created and migrated as that owner, given to the
DATABASE_URL role by ``manage.py setup_db_roles``, and the tests then connect as that least-privilege role. Tests that
exercise maintenance work (``seed_demo``'s bulk load, ANALYZE) run as the owner: mark them ``database_owner``.

Between transactional tests Django flushes every table (TRUNCATE on PostgreSQL, DELETE on SQLite), which the audit
log refuses. Only here, in the harness, the flush lifts the guard for its own transaction, through the owner: on
PostgreSQL it disables the TRUNCATE trigger, truncates and enables it again; on SQLite it drops the triggers, deletes
and creates them again. Nothing in the product can do this: the application's role may not alter the table.
"""

import contextlib
import os
from io import StringIO

import dj_database_url
import pytest

from inbox.audit_integrity import AUDIT_TABLE, sqlite_create_triggers_sql, sqlite_drop_triggers_sql

TRUNCATE_TRIGGER = "inbox_auditevent_refuse_truncate"
CREDENTIALS = ("USER", "PASSWORD", "HOST", "PORT")


def owner_credentials() -> dict | None:
    """USER, PASSWORD, HOST and PORT of MIGRATION_DATABASE_URL; None without it (the tests' role is the owner)."""
    url = os.environ.get("MIGRATION_DATABASE_URL", "")
    if not url:
        return None
    owner = dj_database_url.parse(url)
    return {key: owner[key] for key in CREDENTIALS}


def separate_owner(connection) -> dict | None:
    """The owner's credentials when it is not the role the tests connect as, on PostgreSQL; None otherwise."""
    owner = owner_credentials()
    if connection.vendor != "postgresql" or owner is None:
        return None
    return owner


def _connect_as(connection, credentials: dict) -> None:
    """From now on ``connection`` (all threads: they share its settings) logs in with ``credentials``."""
    connection.close()
    connection.close_pool()
    connection.settings_dict.update(credentials)


class LeastPrivilege:
    """The session's roles: ``start`` after the test database is migrated (as the owner), ``stop`` before it is
    destroyed (as the owner again)."""

    def __init__(self, connection):
        self.connection = connection
        self.owner = separate_owner(connection)
        self.runtime = None
        self._owner_flush_connection = None

    def owner_settings_before_setup(self) -> None:
        if self.owner is not None:
            self.runtime = {key: self.connection.settings_dict[key] for key in CREDENTIALS}
            self.connection.settings_dict.update(self.owner)

    def start(self) -> None:
        if self.owner is None:
            return
        from django.core.management import call_command

        call_command("setup_db_roles", "--runtime-role", self.runtime["USER"], stdout=StringIO())
        _connect_as(self.connection, self.runtime)

    def stop(self) -> None:
        if self._owner_flush_connection is not None:
            self._owner_flush_connection.close()
            self._owner_flush_connection = None
        if self.owner is not None:
            _connect_as(self.connection, self.owner)

    @contextlib.contextmanager
    def as_owner(self):
        """For one test, the Django connection logs in as the owner."""
        if self.owner is None:
            yield
            return
        _connect_as(self.connection, self.owner)
        try:
            yield
        finally:
            _connect_as(self.connection, self.runtime)

    def owner_flush_connection(self):
        import psycopg

        if self._owner_flush_connection is None or self._owner_flush_connection.closed:
            settings = self.connection.settings_dict
            self._owner_flush_connection = psycopg.connect(
                dbname=settings["NAME"],
                user=self.owner["USER"],
                password=self.owner["PASSWORD"] or None,
                host=self.owner["HOST"] or None,
                port=self.owner["PORT"] or None,
                autocommit=True,
                # A runtime connection left inside a transaction would block the TRUNCATE forever; fail instead.
                options="-c lock_timeout=30s",
            )
        return self._owner_flush_connection

    def patched_flush(self, original):
        """``DatabaseOperations.execute_sql_flush`` that lifts the audit guard inside its own transaction."""

        def execute_sql_flush(ops, sql_list):
            connection = ops.connection
            if not sql_list or connection.alias != self.connection.alias:
                return original(ops, sql_list)
            if connection.vendor == "sqlite":
                return original(ops, [*sqlite_drop_triggers_sql(), *sql_list, *sqlite_create_triggers_sql()])
            if connection.vendor != "postgresql":
                return original(ops, sql_list)
            statements = [
                f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {TRUNCATE_TRIGGER}",
                *sql_list,
                f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {TRUNCATE_TRIGGER}",
            ]
            if self.owner is None:  # the tests' own role owns the table
                return original(ops, statements)
            owner = self.owner_flush_connection()
            with owner.transaction(), owner.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
            return None

        return execute_sql_flush


# --- pytest plugin (registered by tests/conftest.py) ----------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "database_owner: the test connects as the schema owner (MIGRATION_DATABASE_URL) when set"
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("database_owner"):
            # First, so the login changes before pytest-django opens the test's transaction.
            item.fixturenames.insert(0, "_as_database_owner")


@pytest.fixture
def _as_database_owner(django_db_setup, request):
    roles = request.config.stash[LEAST_PRIVILEGE]
    with roles.as_owner():
        yield


LEAST_PRIVILEGE = pytest.StashKey[LeastPrivilege]()
