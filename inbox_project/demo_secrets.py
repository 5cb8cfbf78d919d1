"""Inbound webhook secrets for the embedded/demo mode: made once at random and kept in the local data directory
(``var/``, git-ignored), so the webhooks work without configuration and keep working across restarts.

Read by ``inbox_project.settings`` only when demo features are on (``DEBUG`` or ``DEMO_MODE``) and a secret is not
set in the environment; production must configure real secrets (the webhooks answer 503 without them).
"""

import json
import os
import secrets
from pathlib import Path

FILE_NAME = "demo-secrets.json"
NAMES = ("INBOUND_EMAIL_SECRET", "TWILIO_AUTH_TOKEN")


def _read(path: Path) -> dict[str, str]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(values, dict):
        return {}
    return {name: value for name, value in values.items() if isinstance(value, str) and value}


def _write_private(path: Path, values: dict[str, str]) -> Path:
    """Write ``values`` to a temporary file beside ``path`` readable by this user only; its path."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        json.dump(values, output, indent=2)
        output.write("\n")
    return temporary


def demo_secrets(directory: Path) -> dict[str, str]:
    """The demo secrets kept in ``directory``, made (and stored) on first use.

    Several processes may start at once (web, worker, the SMTP receiver): the file appears atomically (a hard link
    of a complete temporary file, which fails if another process linked first), and everyone reads the winner's.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    values = _read(path)
    if all(name in values for name in NAMES):
        return values
    wanted = {**{name: secrets.token_urlsafe(32) for name in NAMES}, **values}
    temporary = _write_private(path, wanted)
    try:
        if values:  # an older file missing a name: complete it in place
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        pass  # another process made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)
