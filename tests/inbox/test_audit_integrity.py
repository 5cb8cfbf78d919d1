"""The audit log cannot be rewritten or wiped from the database, and the application's role holds least privilege
(``inbox.audit_integrity``, migration 0013, ``manage.py setup_db_roles``)."""

import os
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.sql import emit_post_migrate_signal
from django.db import DatabaseError, connection, transaction
from psycopg import sql

from inbox.models import AuditEvent
from tests.factories import AuditEventFactory

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="roles, privileges and TRUNCATE are PostgreSQL's; SQLite has none",
)
sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the SQLite triggers; PostgreSQL's are tested by the tests beside these",
)


def sqlite_triggers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'inbox_auditevent'"
        )
        return {name for (name,) in cursor.fetchall()}


def roles(*names: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolbypassrls FROM pg_roles "
            "WHERE rolname = ANY(%s) ORDER BY rolname",
            [list(names)],
        )
        return cursor.fetchall()


def audit_privileges(role: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE table_name = 'inbox_auditevent' AND grantee = %s",
            [role],
        )
        return {privilege for (privilege,) in cursor.fetchall()}


def setup_roles(*args: str) -> str:
    out = StringIO()
    call_command("setup_db_roles", *args, stdout=out)
    return out.getvalue()


def can_create_roles() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        return cursor.fetchone()[0]


# --- SQLite: triggers --------------------------------------------------------------------------------------------


# Raw-SQL UPDATE and DELETE as the owner: tests/inbox/test_models.py (both databases).


@sqlite_only
def test_sqlite_refuses_an_orm_update_or_delete_that_skips_the_models_own_guard():
    event = AuditEventFactory(actor_label="Nora Nurse")
    plain = AuditEvent._base_manager  # a plain queryset: no append-only check in Python

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        plain.filter(pk=event.pk).update(actor_label="forged")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        plain.filter(pk=event.pk).delete()

    assert AuditEvent.objects.get(pk=event.pk).actor_label == "Nora Nurse"


@sqlite_only
def test_sqlite_triggers_come_back_after_a_table_rebuild_lost_them():
    with connection.cursor() as cursor:  # what the SQLite schema editor's table rebuild does to them
        cursor.execute("DROP TRIGGER inbox_auditevent_no_update")
        cursor.execute("DROP TRIGGER inbox_auditevent_no_delete")

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")  # idempotent

    assert sqlite_triggers() == {"inbox_auditevent_no_update", "inbox_auditevent_no_delete"}
    AuditEventFactory()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent._base_manager.all().delete()


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_audit_events_are_still_appended_and_the_test_flush_still_empties_the_log():
    AuditEventFactory.create_batch(2)

    assert AuditEvent.objects.count() == 2  # and the flush after this test succeeds


def test_setup_db_roles_says_there_is_nothing_to_do_on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite message; PostgreSQL sets roles up (tests below)")

    assert "Nothing to do" in setup_roles("--runtime-role", "care_inbox_app")


# --- setup_db_roles: input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["bad;name", 'x" SUPERUSER --', "Upper", "pg_monitor", "1starts_with_digit", "", "a" * 64]
)
def test_setup_db_roles_refuses_an_invalid_role_name_and_changes_nothing(name):
    before = roles(name) if connection.vendor == "postgresql" else None

    with pytest.raises(CommandError, match="Invalid role name"):
        setup_roles("--runtime-role", name)
    with pytest.raises(CommandError, match="Invalid role name"):
        setup_roles("--runtime-role", "care_inbox_ok", "--owner-role", name)

    if before is not None:
        assert roles(name, "care_inbox_ok") == before


# --- PostgreSQL: the owner, the runtime role ------------------------------------------------------------------


@postgresql_only
@pytest.mark.database_owner
def test_truncate_of_the_audit_log_fails_even_for_its_owner():
    AuditEventFactory()

    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SET CONSTRAINTS ALL IMMEDIATE"
        )  # no deferred foreign-key check left to block a TRUNCATE
        cursor.execute("TRUNCATE inbox_auditevent")

    assert AuditEvent.objects.count() == 1


@postgresql_only
@pytest.mark.database_owner
def test_setup_db_roles_is_idempotent():
    if not can_create_roles():
        pytest.skip("the owner of the test database may not create roles")
    role = f"care_inbox_idem_{os.getpid()}"  # rolled back with the test's transaction

    first = setup_roles("--runtime-role", role, "--password", "it's secret")
    second = setup_roles("--runtime-role", role)

    assert f"created role {role}" in first
    assert "created role" not in second
    assert roles(role) == [(role, True, False, False, False)]
    assert audit_privileges(role) == {"INSERT", "SELECT"}


@postgresql_only
@pytest.mark.database_owner
def test_setup_db_roles_refuses_the_owner_as_runtime_role():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (me,) = cursor.fetchone()

    with pytest.raises(CommandError, match="must differ"):
        setup_roles("--runtime-role", me)


@pytest.fixture
def runtime_role():
    """A fresh runtime role, set up by the command in the test database; dropped afterwards. The test is
    transactional: the role and its grants must be committed for another connection to log in with them."""
    if not can_create_roles():
        pytest.skip("the owner of the test database may not create roles")
    role = f"care_inbox_rt_{os.getpid()}"
    setup_roles("--runtime-role", role)
    yield role
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))  # its privileges here
        cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def connect_as(role: str) -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=role,
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        autocommit=True,
    )


REFUSED_TO_THE_RUNTIME_ROLE = {
    "update": "UPDATE inbox_auditevent SET actor_label = 'forged'",
    "delete": "DELETE FROM inbox_auditevent",
    "truncate": "TRUNCATE inbox_auditevent",
    "disable triggers": "ALTER TABLE inbox_auditevent DISABLE TRIGGER ALL",
    "drop": "DROP TABLE inbox_auditevent",
    "create a table": "CREATE TABLE care_inbox_intruder (id int)",
    "truncate another table": "TRUNCATE inbox_communication",
    "move the audit sequence": "SELECT setval(pg_get_serial_sequence('inbox_auditevent', 'id'), 1)",
}


@postgresql_only
@pytest.mark.database_owner
@pytest.mark.django_db(transaction=True)
def test_the_runtime_role_may_only_append_to_and_read_the_audit_log(runtime_role):
    event = AuditEventFactory(actor_label="Nora Nurse")

    with connect_as(runtime_role) as runtime, runtime.cursor() as cursor:
        cursor.execute(
            "INSERT INTO inbox_auditevent (actor_label, action, object_type, object_id, detail, user_agent, at) "
            "VALUES ('system', 'auth.sign_in', '', '', '{}', '', now())"
        )
        cursor.execute("SELECT count(*) FROM inbox_auditevent")
        assert cursor.fetchone()[0] == 2
        for statement in REFUSED_TO_THE_RUNTIME_ROLE.values():
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                cursor.execute(statement)
        cursor.execute(
            "UPDATE inbox_communication SET subject = subject"
        )  # other tables: rows are its to change
        cursor.execute("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", [runtime_role])
        assert cursor.fetchone()[0] == 0

    assert AuditEvent.objects.get(pk=event.pk).actor_label == "Nora Nurse"
    assert AuditEvent.objects.count() == 2


@postgresql_only
def test_with_a_migration_url_the_tests_connect_as_the_application_role_which_owns_nothing():
    from tests.database import owner_credentials

    owner = owner_credentials()
    if owner is None:
        pytest.skip("MIGRATION_DATABASE_URL is unset: the tests connect as the owner")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, count(c.oid) FROM pg_class c WHERE c.relowner = current_user::regrole"
        )
        me, owned = cursor.fetchone()

    assert me == connection.settings_dict["USER"] != owner["USER"]
    assert owned == 0
    assert audit_privileges(me) == {"INSERT", "SELECT"}


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_audit_events_committed_by_a_test_are_flushed_after_it():
    AuditEventFactory.create_batch(2)

    assert AuditEvent.objects.count() == 2  # the flush after this test truncates them through the owner
