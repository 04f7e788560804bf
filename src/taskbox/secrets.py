"""Secrets, looked up the way Flyte injects them, and registered for redaction as they are read.

Why: Flyte's pod webhook hands a task its secrets either as environment variables
(``<prefix><GROUP>[_<GROUP_VERSION>]_<KEY>``, prefix ``FLYTE_SECRETS_ENV_PREFIX``, flytekit's default
``_FSEC_``) or as files (``<dir>/<group>[/<group_version>]/<file_prefix><key>``, dir
``FLYTE_SECRETS_DEFAULT_DIR``, mounted at ``/etc/flyte/secrets``; flytekit's fallback ``/etc/secrets``).
Executors ask for secrets only through :class:`SecretStore`, so every value that enters the process
through it is known to the redactor before it can reach a log line or an error document.

Invariants:
    * ``group``, ``group_version`` and ``key`` match ``^[A-Za-z0-9_.-]+$`` and are not ``.``/``..``, so a
      name can never climb out of the secrets directory (``InvalidSecretName`` otherwise).
    * Secret files larger than :data:`MAX_FILE_BYTES` are refused.
    * Values are stripped of surrounding white space, as flytekit does.
    * A missing secret's error names the group/key and both places looked at, never a value.
    * The secrets a template declares (``security_context.secrets``) are read and registered before the
      task runs (:meth:`SecretStore.preload`), so a value is masked even when user code reads it from the
      environment or the file itself; a declared secret that is absent or misnamed is skipped there and
      fails only where it is read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from taskbox import redaction
from taskbox.errors import InvalidSecretName, SecretNotFound

MAX_FILE_BYTES = 64 * 1024
DEFAULT_ENV_PREFIX = "_FSEC_"
DEFAULT_DIRS = ("/etc/flyte/secrets", "/etc/secrets")

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _check_name(what: str, value: str) -> str:
    if not _NAME.match(value) or value in (".", ".."):
        raise InvalidSecretName(f"secret {what} {value!r} must match [A-Za-z0-9_.-]+ and not be '.' or '..'")
    return value


class SecretStore:
    """Reads secrets from the environment and the secrets directory.

    Args:
        environ: The environment to read (defaults to ``os.environ``).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    @property
    def env_prefix(self) -> str:
        """The prefix of secret environment variables."""
        return self._env.get("FLYTE_SECRETS_ENV_PREFIX", DEFAULT_ENV_PREFIX)

    def directories(self) -> tuple[str, ...]:
        """The directories searched for secret files, in order."""
        configured = self._env.get("FLYTE_SECRETS_DEFAULT_DIR")
        return (configured,) if configured else DEFAULT_DIRS

    def env_var_name(self, group: str, key: str | None = None, group_version: str | None = None) -> str:
        """The environment variable Flyte uses for this secret."""
        parts = [p for p in (group, group_version, key) if p]
        return (self.env_prefix + "_".join(parts)).upper()

    def file_paths(self, group: str, key: str | None = None, group_version: str | None = None) -> list[str]:
        """The candidate files for this secret, one per secrets directory."""
        file_prefix = self._env.get("FLYTE_SECRETS_FILE_PREFIX", "")
        segments = [p for p in (group, group_version) if p]
        name = f"{file_prefix}{key}" if key else None
        return [os.path.join(d, *segments, *([name] if name else [])) for d in self.directories()]

    def get(
        self,
        group: str,
        key: str | None = None,
        group_version: str | None = None,
        *,
        env_var: str | None = None,
    ) -> str:
        """Return a secret's value and register it for redaction.

        Args:
            group: The secret group (Flyte's ``Secret.group``).
            key: The key inside the group.
            group_version: Optional version of the group.
            env_var: A custom environment variable name (Flyte's ``Secret.env_var``), tried first.

        Returns:
            The value, stripped.

        Raises:
            InvalidSecretName: A name could escape the secrets directory.
            SecretNotFound: Neither the environment nor a file holds it.
        """
        _check_name("group", group)
        if key is not None:
            _check_name("key", key)
        if group_version:
            _check_name("group_version", group_version)
        names = [env_var] if env_var else []
        names.append(self.env_var_name(group, key, group_version))
        for name in names:
            value = self._env.get(name)
            if value is not None:
                return self._remember(value)
        paths = self.file_paths(group, key, group_version)
        for path in paths:
            value = self._read_file(path)
            if value is not None:
                return self._remember(value)
        raise SecretNotFound(
            f"secret group={group!r} key={key!r} not found: looked for environment variable "
            f"{' or '.join(names)} and file {' or '.join(paths)}"
        )

    def preload(self, declared: Iterable[Any]) -> None:
        """Read (and so register for redaction) each declared secret that is present.

        Args:
            declared: Flyte ``Secret`` messages (``group``, ``key``, ``group_version``, ``env_var``) or
                ``(group, key, group_version)`` tuples (``@taskbox.task(secrets=...)``).
        """
        for item in declared:
            if isinstance(item, tuple):
                group, key, version = (*item, None, None)[:3]
                env_var = None
            else:
                group, key, version = item.group, item.key, item.group_version
                env_var = getattr(item, "env_var", None)
            try:
                self.get(group, key or None, version or None, env_var=env_var or None)
            except (SecretNotFound, InvalidSecretName):
                continue

    @staticmethod
    def _read_file(path: str) -> str | None:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        if len(data) > MAX_FILE_BYTES:
            raise InvalidSecretName(f"secret file {path} is larger than {MAX_FILE_BYTES} bytes")
        return data.decode("utf-8", errors="surrogateescape")

    @staticmethod
    def _remember(value: str) -> str:
        value = value.strip()
        redaction.register(value)
        return value
