"""Every environment variable taskbox reads as a setting: one registry, typed readers.

Why: a setting read in four ways made the same typo a retried ``SYSTEM:ValueError`` in one variable and
``USER:InvalidConfig`` in the next. :data:`REGISTRY` is the single source of truth (name, type, default,
meaning); the README's environment tables list the same names (``tests/test_settings.py`` checks both).

Example::

    from taskbox import settings

    cap = settings.integer("TASKBOX_MAX_TEMPLATE_BYTES")          # the registered default when unset
    grace = settings.seconds("TASKBOX_TERM_GRACE_S", environ=env)  # from a given mapping

Invariants:
    * Stdlib only and cheap to import: it is on every task start.
    * Readers look the environment up at call time (tests set variables per test), and only read
      registered names (an unregistered name is a programming error: ``KeyError``).
    * Unset or empty (after stripping) means the registered default; bounds and units come from the
      registry unless the caller passes its own.
    * A malformed value raises :class:`taskbox.errors.ConfigError` (``USER:InvalidConfig``, not retried)
      naming the variable, the value and the expected form. :func:`validate` checks every registered
      setting at once; :meth:`taskbox.context.ExecutionContext.from_env` calls it, so a typo in a setting
      read only later (at SIGTERM, on a storage retry) still fails the run at its start.
    * ``kind="flag"`` entries are ``taskbox run``'s command-line flags given through the environment;
      they are registered for the documentation check, read by :mod:`taskbox.entrypoint.run`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple, overload

from taskbox.errors import ConfigError

__all__ = [
    "FALSY",
    "REGISTRY",
    "TRUTHY",
    "Setting",
    "boolean",
    "integer",
    "items",
    "path",
    "seconds",
    "string",
    "validate",
]

TRUTHY = frozenset({"1", "true", "yes", "on"})
"""Values (case-insensitive) that mean yes."""
FALSY = frozenset({"0", "false", "no", "off"})
"""Values (case-insensitive) that mean no; an empty value is the default."""

_MIB = 1024 * 1024
#: Default of ``TASKBOX_TERM_GRACE_S``: how long the commit may take after SIGTERM (signals, the job loop).
TERM_GRACE_DEFAULT_S = 10.0


class Setting(NamedTuple):
    """One registered variable.

    Attributes:
        name: The variable's name (``TASKBOX_INPUT_<NAME>`` for a family of names).
        kind: ``int``, ``float`` (seconds), ``bool``, ``str``, ``list`` (comma-separated), ``path`` or
            ``flag`` (a ``taskbox run`` flag; read by the command line, not here).
        default: The value when unset, in the variable's own unit (``None``: no default).
        meaning: One line, for the README.
        unit: ``int`` only: the value is multiplied by this (1024**2 for ``..._MB``).
        minimum: Smallest accepted value (in the variable's unit), or ``None``.
        platform: Set by the platform (Flyte, Dagster's Pipes clients), not the user: :func:`validate` skips
            it and its reader's caller reports a malformed value as the platform's error.
    """

    name: str
    kind: str
    default: object
    meaning: str
    unit: int = 1
    minimum: float | None = None
    platform: bool = False


def _entries() -> tuple[Setting, ...]:
    s = Setting
    return (
        # Sizes and limits.
        s("TASKBOX_MAX_TEMPLATE_BYTES", "int", 64 * _MIB, "largest task template file read (bytes)", minimum=1),
        s("TASKBOX_MAX_INPUTS_BYTES", "int", 160 * _MIB, "largest inputs.pb read (bytes)", minimum=1),
        s("TASKBOX_BUNDLE_MAX_MB", "int", 512, "largest compressed code bundle (MiB)", unit=_MIB, minimum=1),
        s("TASKBOX_BUNDLE_MAX_EXTRACTED_MB", "int", 1024, "largest extracted bundle total (MiB)", unit=_MIB, minimum=1),
        s("TASKBOX_BUNDLE_MAX_FILES", "int", 100_000, "most files and directories in a bundle", minimum=1),
        s("TASKBOX_BUNDLE_MAX_RATIO", "int", 200, "largest bundle compression ratio", minimum=1),
        # Retries and time.
        s("TASKBOX_STORAGE_RETRIES", "int", 5, "retries of a transient storage error", minimum=0),
        s("TASKBOX_STORAGE_RETRY_BUDGET_S", "float", 60.0, "total time for storage retries (s)", minimum=0),
        s("TASKBOX_STORAGE_RETRY_BASE_S", "float", 0.1, "base of the storage retry backoff (s)", minimum=0),
        s(
            "TASKBOX_TERM_GRACE_S",
            "float",
            TERM_GRACE_DEFAULT_S,
            "how long the commit may take after SIGTERM (s)",
            minimum=0,
        ),
        s(
            "TASKBOX_HTTP_BACKOFF_BASE_S",
            "float",
            None,
            "overrides the http executors' retry backoff base (s)",
            minimum=0,
        ),
        # Places, lists, names.
        s("TASKBOX_HTTP_ALLOW", "list", (), "CIDRs and host names the SSRF guard lets through"),
        s("TASKBOX_CACHE_DIR", "path", None, "the sqlite executor's download cache"),
        s("TASKBOX_SQL_READ_ONLY", "bool", False, "makes every run of the sql executor read-only"),
        s("TASKBOX_LOG_LEVEL", "str", "INFO", "log level (also `taskbox run --log-level`)"),
        # flytekit's variables that taskbox reads as settings.
        s("FLYTE_FAIL_ON_ERROR", "bool", False, "exit 1 after writing error.pb (`--fail-on-error`)"),
        s(
            "_F_L_MIN_SIZE_MB",
            "int",
            10,
            "when set, offload output literals of at least this size (MiB)",
            unit=_MIB,
            minimum=0,
            platform=True,
        ),
        s(
            "_F_L_MAX_SIZE_MB",
            "int",
            1000,
            "largest output literal offloaded (MiB)",
            unit=_MIB,
            minimum=0,
            platform=True,
        ),
        s("FLYTE_SECRETS_ENV_PREFIX", "str", "_FSEC_", "prefix of secret environment variables"),
        s(
            "FLYTE_SECRETS_DEFAULT_DIR",
            "path",
            None,
            "directory of secret files (else /etc/flyte/secrets, /etc/secrets)",
        ),
        s("FLYTE_SECRETS_FILE_PREFIX", "str", "", "prefix of secret file names"),
        # Azure Blob Storage (storage/azure.py): flytekit's `azure` section, then adlfs' and the SDK's names.
        s("FLYTE_AZURE_STORAGE_ACCOUNT_NAME", "str", None, "Azure storage account (flytekit)"),
        s("FLYTE_AZURE_STORAGE_ACCOUNT_KEY", "str", None, "Azure storage account key (flytekit; a secret)"),
        s("FLYTE_AZURE_TENANT_ID", "str", None, "Azure service principal's tenant (flytekit)"),
        s("FLYTE_AZURE_CLIENT_ID", "str", None, "Azure service principal or managed identity (flytekit)"),
        s("FLYTE_AZURE_CLIENT_SECRET", "str", None, "Azure service principal's secret (flytekit; a secret)"),
        s("AZURE_STORAGE_CONNECTION_STRING", "str", None, "Azure endpoint and credential together (a secret)"),
        s("AZURE_STORAGE_ACCOUNT_NAME", "str", None, "Azure storage account (adlfs)"),
        s("AZURE_STORAGE_ACCOUNT_KEY", "str", None, "Azure storage account key (adlfs; a secret)"),
        s("AZURE_STORAGE_SAS_TOKEN", "str", None, "Azure shared access signature (adlfs; a secret)"),
        s("AZURE_STORAGE_TENANT_ID", "str", None, "Azure service principal's tenant (adlfs)"),
        s("AZURE_STORAGE_CLIENT_ID", "str", None, "Azure service principal or managed identity (adlfs)"),
        s("AZURE_STORAGE_CLIENT_SECRET", "str", None, "Azure service principal's secret (adlfs; a secret)"),
        s("AZURE_STORAGE_ANON", "str", None, "anonymous Azure access when no credential is set (adlfs' rule)"),
        s("AZURE_STORAGE_ENDPOINT", "str", None, "Azure blob service URL (emulators, private endpoints)"),
        s(
            "TASKBOX_AZURE_ENDPOINT_SUFFIXES",
            "list",
            (),
            "Azure endpoint suffixes an abfs:// URI may name beyond Azure's clouds' (Azure Stack Hub)",
        ),
        # Dagster Pipes (set by Dagster's Pipes clients; entrypoint/pipes.py reads them with dagster-pipes).
        s(
            "DAGSTER_PIPES_CONTEXT",
            "str",
            "",
            "Dagster Pipes context: when set, run/execute speak Pipes",
            platform=True,
        ),
        s("DAGSTER_PIPES_MESSAGES", "str", "", "where Dagster Pipes messages go", platform=True),
        # `taskbox run`'s flags, from the environment.
        s("TASKBOX_TEMPLATE", "flag", None, "`taskbox run --template`"),
        s("TASKBOX_EXECUTOR", "flag", None, "`taskbox run --executor`"),
        s("TASKBOX_CONFIG", "flag", None, "`taskbox run --config`"),
        s("TASKBOX_INTERFACE", "flag", None, "`taskbox run --interface`"),
        s("TASKBOX_INPUTS", "flag", None, "`taskbox run --inputs`"),
        s("TASKBOX_INPUT_<NAME>", "flag", None, "`taskbox run --input NAME=value`"),
        s("TASKBOX_OUTPUTS", "flag", None, "`taskbox run --outputs`"),
        s("TASKBOX_OUTPUT_FILES", "flag", None, "`taskbox run --output-file` (comma-separated name=path)"),
        s("TASKBOX_RAW_OUTPUT_PREFIX", "flag", None, "`taskbox run --raw-output-prefix`"),
        s("TASKBOX_CHECKPOINT_PATH", "flag", None, "`taskbox run --checkpoint-path`"),
        s("TASKBOX_PREV_CHECKPOINT", "flag", None, "`taskbox run --prev-checkpoint`"),
        s("TASKBOX_PROGRESS_FILE", "flag", None, "`taskbox run --progress-file`"),
        s("TASKBOX_LOG_FORMAT", "flag", None, "`taskbox run --log-format`"),
        s("TASKBOX_QUIET", "flag", None, "`taskbox run --quiet`"),
        s("TASKBOX_IMAGE", "flag", None, "`taskbox run --image`"),
    )


REGISTRY: dict[str, Setting] = {e.name: e for e in _entries()}
"""Every variable taskbox reads as a setting, by name."""

_BOOL_FORM = f"one of {', '.join(sorted(TRUTHY | FALSY))}"


def _raw(name: str, environ: Mapping[str, str] | None) -> tuple[Setting, str]:
    spec = REGISTRY[name]
    env = os.environ if environ is None else environ
    return spec, (env.get(name) or "").strip()


def _bad(name: str, raw: str, form: str) -> ConfigError:
    return ConfigError(f"environment variable {name}={raw!r} is malformed: expected {form}")


def _bounded(spec: Setting, raw: str, value: float, minimum: float | None, form: str) -> None:
    if minimum is not None and value < minimum:
        raise _bad(spec.name, raw, f"{form} >= {minimum:g}")


def integer(
    name: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    unit: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An integer setting, multiplied by its unit (``TASKBOX_BUNDLE_MAX_MB=8`` is 8 MiB in bytes).

    Args:
        name: A registered variable.
        default: Used when unset, in the variable's unit (the registered default if ``None``).
        minimum: Smallest accepted value in the variable's unit (the registered one if ``None``).
        unit: Multiplier (the registered one if ``None``).
        environ: The environment (``os.environ`` if ``None``).

    Returns:
        The value times the unit.

    Raises:
        ConfigError: The value is not a whole number, or is under the minimum.
        KeyError: ``name`` is not registered.
    """
    spec, raw = _raw(name, environ)
    unit = spec.unit if unit is None else unit
    lowest = spec.minimum if minimum is None else minimum
    form = "an integer" + (" number of MiB" if unit == _MIB else "")
    if not raw:
        value = spec.default if default is None else default
        return int(value) * unit  # type: ignore[call-overload]  # registered int defaults are ints
    try:
        number = int(raw)
    except ValueError:
        raise _bad(name, raw, form) from None
    _bounded(spec, raw, number, lowest, form)
    return number * unit


@overload
def seconds(
    name: str, default: float, *, minimum: float | None = None, environ: Mapping[str, str] | None = None
) -> float: ...
@overload
def seconds(
    name: str, default: None = None, *, minimum: float | None = None, environ: Mapping[str, str] | None = None
) -> float | None: ...
def seconds(
    name: str, default: float | None = None, *, minimum: float | None = None, environ: Mapping[str, str] | None = None
) -> float | None:
    """A duration in seconds (a decimal number; ``inf`` and ``nan`` are refused).

    Args:
        name: A registered variable.
        default: Used when unset (the registered default if ``None``).
        minimum: Smallest accepted value (the registered one if ``None``).
        environ: The environment (``os.environ`` if ``None``).

    Returns:
        The number of seconds; ``None`` when unset without a default.

    Raises:
        ConfigError: The value is not a finite number, or is under the minimum.
    """
    spec, raw = _raw(name, environ)
    minimum = spec.minimum if minimum is None else minimum
    form = "a number of seconds"
    if not raw:
        value = spec.default if default is None else default
        return None if value is None else float(value)  # type: ignore[arg-type]
    try:
        number = float(raw)
    except ValueError:
        raise _bad(name, raw, form) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _bad(name, raw, form)
    _bounded(spec, raw, number, minimum, form)
    return number


def boolean(name: str, default: bool | None = None, *, environ: Mapping[str, str] | None = None) -> bool:
    """A yes/no setting: :data:`TRUTHY` or :data:`FALSY`, case-insensitive; empty is the default.

    Raises:
        ConfigError: The value is in neither set.
    """
    spec, raw = _raw(name, environ)
    if not raw:
        return bool(spec.default if default is None else default)
    word = raw.lower()
    if word in TRUTHY:
        return True
    if word in FALSY:
        return False
    raise _bad(name, raw, _BOOL_FORM)


@overload
def string(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> str: ...
@overload
def string(name: str, default: None = None, *, environ: Mapping[str, str] | None = None) -> str | None: ...
def string(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """A text setting, stripped; the default (the registered one if ``None``) when unset or empty."""
    spec, raw = _raw(name, environ)
    if raw:
        return raw
    value = spec.default if default is None else default
    return None if value is None else str(value)


def path(name: str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """A filesystem path setting, ``~`` expanded; ``None`` (or the registered default) when unset."""
    value = string(name, environ=environ)
    return None if value is None else os.path.expanduser(value)


def items(name: str, *, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """A comma-separated list setting: the non-empty, stripped items (``()`` when unset)."""
    _, raw = _raw(name, environ)
    return tuple(part.strip() for part in raw.split(",") if part.strip())


_CHECKERS = {"int": integer, "float": seconds, "bool": boolean}


def validate(environ: Mapping[str, str] | None = None) -> None:
    """Check every registered setting that is set; the first malformed one raises.

    Args:
        environ: The environment (``os.environ`` if ``None``).

    Raises:
        ConfigError: A setting is malformed (the message names it and the expected form).
    """
    for spec in REGISTRY.values():
        check = _CHECKERS.get(spec.kind)
        if check is not None and not spec.platform:
            check(spec.name, environ=environ)  # type: ignore[operator]
