"""The database's own guard on the audit log, re-applied after every ``migrate``: on SQLite the triggers refusing
UPDATE and DELETE of audit rows; on PostgreSQL no role but the owner holding more than INSERT and SELECT on it.

Migration 0013 installs the triggers (and, on PostgreSQL, the one refusing TRUNCATE). This module keeps them true
when a later migration could undo them silently: Django's SQLite schema editor rebuilds a table for most ALTERs,
which drops its triggers, and PostgreSQL's default privileges may grant a new table's rights to the application role.
"""

from django.db import connections

AUDIT_TABLE = "inbox_auditevent"

# SQLite: one trigger per refused statement (the message matches PostgreSQL's, so callers and tests see one wording).
SQLITE_TRIGGERS = {
    "inbox_auditevent_no_update": "UPDATE",
    "inbox_auditevent_no_delete": "DELETE",
}


def sqlite_create_triggers_sql() -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {operation} ON {AUDIT_TABLE} "
        f"BEGIN SELECT RAISE(ABORT, 'audit events are append-only: {operation} refused'); END"
        for name, operation in SQLITE_TRIGGERS.items()
    ]


def sqlite_drop_triggers_sql() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS]


# PostgreSQL: privileges on the audit table that would let a role other than its owner rewrite or wipe it.
WIDENING_PRIVILEGES = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")


def protect_audit_log(sender=None, using="default", **kwargs) -> None:
    """``post_migrate`` handler (connected in ``InboxConfig.ready``); idempotent and cheap enough to run after every
    migrate and every test flush."""
    connection = connections[using]
    if AUDIT_TABLE not in connection.introspection.table_names():
        return
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            for statement in sqlite_create_triggers_sql():
                cursor.execute(statement)
    elif connection.vendor == "postgresql":
        _revoke_widening_privileges(connection)


def _revoke_widening_privileges(connection) -> None:
    """Take UPDATE, DELETE, TRUNCATE (and TRIGGER, REFERENCES) on the audit table back from every role but its owner,
    whatever granted them (e.g. default privileges when a migration recreates the table). Only the owner may revoke;
    any other role (the application's) finds nothing it could revoke and stops after one query."""
    from psycopg import sql

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT a.grantee, a.privilege_type, pg_has_role(c.relowner, 'USAGE') "
            "FROM pg_class c, aclexplode(c.relacl) a "
            "WHERE c.oid = %s::regclass AND a.grantee <> c.relowner AND a.privilege_type = ANY(%s)",
            [AUDIT_TABLE, list(WIDENING_PRIVILEGES)],
        )
        grants = cursor.fetchall()
        if not grants or not grants[0][2]:
            return
        cursor.execute(
            "SELECT oid, rolname FROM pg_roles WHERE oid = ANY(%s)", [[grantee for grantee, _p, _o in grants]]
        )
        names = dict(cursor.fetchall())
        for grantee, privilege, _owner in grants:
            role = sql.Identifier(names[grantee]) if grantee else sql.SQL("PUBLIC")  # 0 is PUBLIC
            cursor.execute(
                sql.SQL("REVOKE {} ON TABLE {} FROM {}").format(
                    sql.SQL(privilege), sql.Identifier(AUDIT_TABLE), role
                )
            )
