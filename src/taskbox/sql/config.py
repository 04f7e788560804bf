"""Config fields shared by the ``sqlite`` and ``sql`` executors, and Flyte's secret references.

Why: both executors accept flytekit's ``custom`` fields (``query_template``, ``uri``...) and add the
same safety knobs; defining them once keeps their names, defaults and validation identical.

Invariants:
    * flytekit's templates validate unchanged: every field flytekit writes is declared, and every
      field taskbox adds has a default. Numbers may arrive as floats (protobuf ``Struct``).
    * Unknown fields are rejected (:class:`taskbox.configbase.ExecutorConfig`).
    * A query's outputs, unless declared, are one table named ``results`` (:func:`query_outputs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taskbox.configbase import ExecutorConfig

__all__ = ["QueryConfig", "SecretRef", "query_outputs"]


class SecretRef(BaseModel):
    """A Flyte secret, as flytekit writes it into ``secret_connect_args``.

    Attributes:
        group: The secret's group.
        key: The key inside the group.
        group_version: Optional version of the group.
        mount_requirement: Flyte's ``Secret.MountType`` (0 any, 1 env var, 2 file); taskbox looks in
            both places whatever it says.
        env_var: A custom environment variable to read first.

    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    group: str
    key: str | None = None
    group_version: str | None = None
    mount_requirement: int | str | None = None
    env_var: str | None = None


class QueryConfig(ExecutorConfig):
    """Fields every SQL executor takes.

    Attributes:
        query_template: The query, with ``{{ .inputs.name }}`` placeholders (flytekit's field).
        identifiers: Input name -> the identifiers (table or column names) its value may be; such an
            input is spliced in quoted by the dialect instead of being bound.
        timeout_seconds: Statement timeout; a longer statement fails with a recoverable error.
        batch_rows: Rows fetched and written per batch (memory is bounded by one batch).

    """

    query_template: str = Field(min_length=1)
    identifiers: dict[str, list[str]] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
    batch_rows: int = Field(default=65_536, ge=1, le=10_000_000)

    @field_validator("identifiers")
    @classmethod
    def _identifiers_are_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, allowed in value.items():
            if not allowed:
                raise ValueError(f"identifiers[{name!r}] lists no allowed value")
            for ident in allowed:
                if not ident or "\x00" in ident or any(not part for part in ident.split(".")):
                    raise ValueError(f"identifiers[{name!r}] holds an invalid identifier {ident!r}")
        return value


def query_outputs(declared: Mapping[str, Any]) -> dict[str, Any]:
    """Return the outputs of a query task: the declared ones, or else ``results: table`` (flytekit's convention).

    Args:
        declared: Declared outputs, name -> ``LiteralType``; declaring any replaces the ``results`` table.

    """
    from taskbox.typespec import parse_type

    return dict(declared) or {"results": parse_type("table")}
