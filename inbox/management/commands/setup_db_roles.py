"""``manage.py setup_db_roles``: the PostgreSQL roles Care Inbox runs with, and their privileges (idempotent).

Run it with an administrator's or the owner's URL (MIGRATION_DATABASE_URL, which settings use for this command):

- the owner (``--owner-role``, default: the role of that URL) owns every table, sequence and function of the schema
  and runs the migrations;
- the runtime role (``--runtime-role``, DATABASE_URL) logs in, owns nothing, may SELECT, INSERT, UPDATE and DELETE
  rows and use sequences, but only INSERT and SELECT audit events; never TRUNCATE, ALTER or CREATE.

Default privileges give the runtime role the same rights on tables later migrations create.
"""

import re

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from psycopg import sql

from inbox.audit_integrity import AUDIT_TABLE

# Unquoted-identifier shape, lower case (what PostgreSQL folds to), at most 63 bytes; pg_ names are reserved.
ROLE_NAME = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")
# Attributes neither role may hold: the runtime one must not escape its grants, the owner must not manage roles.
SAFE_ATTRIBUTES = sql.SQL("NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
TABLE_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_RIGHTS = "USAGE, SELECT"


class Command(BaseCommand):
    help = (
        "Create or update the PostgreSQL owner and runtime roles and grant the runtime role least privilege."
    )

    def add_arguments(self, parser):
        parser.add_argument("--runtime-role", required=True, help="The role DATABASE_URL logs in as.")
        parser.add_argument(
            "--password",
            help="The runtime role's password (set or changed); omitted: left as it is (none for a new role).",
        )
        parser.add_argument(
            "--owner-role",
            help="The role owning the schema (LOGIN: MIGRATION_DATABASE_URL logs in as it). Default: the role this "
            "command connects as. Objects owned by another role are handed over to it.",
        )
        parser.add_argument("--owner-password", help="The owner role's password (set or changed).")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: default).")

    def handle(self, *args, runtime_role, password, owner_role, owner_password, database, **options):
        for name in (runtime_role, owner_role):
            if name is not None and not ROLE_NAME.match(name):
                raise CommandError(
                    f"Invalid role name {name!r}: use 1 to 63 lower-case letters, digits and underscores, "
                    "starting with a letter or an underscore, and not starting with pg_."
                )
        connection = connections[database]
        if connection.vendor != "postgresql":
            self.stdout.write(
                f"Nothing to do on {connection.display_name}: it has no roles. Triggers keep its audit log "
                "append-only."
            )
            return
        try:
            with transaction.atomic(using=database), connection.cursor() as cursor:
                setup = RoleSetup(cursor, runtime_role, password, owner_role, owner_password)
                changes = setup.apply()
        except DatabaseError as error:
            raise CommandError(f"Could not set up the database roles: {error}".strip()) from error
        for change in changes:
            self.stdout.write(f"- {change}")
        self.stdout.write(
            self.style.SUCCESS(f"Database roles ready: runtime {runtime_role}, owner {setup.owner}.")
        )


class RoleSetup:
    """The statements, run in one transaction: a failure changes nothing."""

    def __init__(self, cursor, runtime, password, owner, owner_password):
        self.cursor = cursor
        self.runtime, self.password = runtime, password
        self.owner_name, self.owner_password = owner, owner_password
        self.changes: list[str] = []

    def query(self, statement, params=()):
        self.cursor.execute(statement, params)
        return self.cursor.fetchall()

    def run(self, statement, change: str | None = None):
        self.cursor.execute(statement)
        if change:
            self.changes.append(change)

    def apply(self) -> list[str]:
        ((me, database, schema),) = self.query("SELECT current_user, current_database(), current_schema()")
        if schema is None:
            raise CommandError("No current schema: check the search_path of the role you connect as.")
        self.owner = self.owner_name or me
        if self.runtime in (self.owner, me):
            raise CommandError(
                f"The runtime role must differ from the owner ({self.owner}) and from the role running this "
                f"command ({me})."
            )
        self.schema = sql.Identifier(schema)
        owner, runtime = sql.Identifier(self.owner), sql.Identifier(self.runtime)

        self.ensure_role(self.runtime, self.password)
        if self.owner != me:
            self.ensure_role(self.owner, self.owner_password)
            self.run(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(self.schema, owner))
        self.hand_over_objects(schema)
        if (
            self.owner == me
            and self.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0]
        ):
            self.changes.append(
                f"Note: the owner {me} is a superuser, which can bypass any trigger; in production use a "
                "dedicated --owner-role."
            )
        if self.query("SELECT pg_has_role(%s, %s, 'MEMBER')", [self.runtime, self.owner])[0][0]:
            raise CommandError(
                f"The runtime role {self.runtime} is a member of the owner {self.owner}: revoke it."
            )
        # pg_trgm (search indexes) is a trusted extension; installed here, the migration need not be a superuser's.
        if self.query(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm' AND installed_version IS NULL"
        ):
            self.run(sql.SQL("CREATE EXTENSION IF NOT EXISTS pg_trgm"), "installed the pg_trgm extension")

        # Before PostgreSQL 15 every role could create objects in the public schema.
        self.run(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(self.schema))
        self.run(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), runtime))
        self.run(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(self.schema, runtime))
        self.run(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(self.schema, runtime))
        for kind, rights in (("TABLES", TABLE_RIGHTS), ("SEQUENCES", SEQUENCE_RIGHTS)):
            self.run(
                sql.SQL("REVOKE ALL ON ALL {} IN SCHEMA {} FROM {}").format(
                    sql.SQL(kind), self.schema, runtime
                )
            )
            self.run(
                sql.SQL("GRANT {} ON ALL {} IN SCHEMA {} TO {}").format(
                    sql.SQL(rights), sql.SQL(kind), self.schema, runtime
                )
            )
            self.run(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON {} TO {}").format(
                    owner, self.schema, sql.SQL(rights), sql.SQL(kind), runtime
                )
            )
        self.narrow_audit_rights(runtime)
        self.changes.append(
            f"{self.runtime}: {TABLE_RIGHTS} on the tables of {database}.{schema}, USAGE and SELECT "
            f"on its sequences, INSERT and SELECT only on {AUDIT_TABLE}; default privileges of {self.owner} follow"
        )
        return self.changes

    def ensure_role(self, name: str, password: str | None) -> None:
        role = sql.Identifier(name)
        rows = self.query(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = %s",
            [name],
        )
        secret = (
            sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password is not None else sql.SQL("")
        )
        if not rows:
            self.run(
                sql.SQL("CREATE ROLE {} LOGIN {}{}").format(role, SAFE_ATTRIBUTES, secret),
                f"created role {name}",
            )
            return
        can_login, *powers = rows[0]
        if not can_login or any(powers):
            self.run(
                sql.SQL("ALTER ROLE {} LOGIN {}").format(role, SAFE_ATTRIBUTES),
                f"role {name}: LOGIN, no superuser, createdb, createrole, replication or bypassrls",
            )
        if password is not None:
            self.run(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)),
                f"{name}: password set",
            )

    def hand_over_objects(self, schema: str) -> None:
        """Tables, views, free-standing sequences and functions of the schema, not part of an extension, become the
        owner's (identity and serial sequences follow their table)."""
        owner = sql.Identifier(self.owner)
        relations = self.query(
            "SELECT c.relname, c.relkind FROM pg_class c "
            "WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') "
            "AND c.relowner <> %s::regrole "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
            "AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))",
            [schema, self.owner],
        )
        for name, kind in relations:
            keyword = sql.SQL("SEQUENCE" if kind == "S" else "TABLE")
            self.run(
                sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
                    keyword, self.schema, sql.Identifier(name), owner
                )
            )
        functions = self.query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "WHERE p.pronamespace = %s::regnamespace AND p.proowner <> %s::regrole "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
            "AND d.objid = p.oid AND d.deptype = 'e')",
            [schema, self.owner],
        )
        for (signature,) in functions:
            # regprocedure's text is already a quoted, schema-qualified signature
            self.run(sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(signature), owner))
        if relations or functions:
            self.changes.append(
                f"{len(relations)} relations and {len(functions)} functions now owned by {self.owner}"
            )

    def narrow_audit_rights(self, runtime) -> None:
        if not self.query("SELECT to_regclass(%s)", [AUDIT_TABLE])[0][0]:
            return  # not migrated yet: the migrations' post_migrate step narrows it (inbox.audit_integrity)
        table = sql.Identifier(AUDIT_TABLE)
        self.run(sql.SQL("REVOKE UPDATE, DELETE ON {}.{} FROM {}").format(self.schema, table, runtime))
        (sequence,) = self.query("SELECT pg_get_serial_sequence(%s, 'id')", [AUDIT_TABLE])[0]
        if sequence:
            # pg_get_serial_sequence returns a quoted, qualified name
            self.run(sql.SQL("REVOKE SELECT ON SEQUENCE {} FROM {}").format(sql.SQL(sequence), runtime))
