"""Base of every executor's ``custom`` config model.

Why: a TaskTemplate lives longer than the image that first ran it, so each config carries the version
of its schema; an executor can then accept older shapes explicitly. Unknown fields are rejected, so a
typo in a template fails loudly instead of being ignored.

Invariants:
    * ``version`` defaults to 1; templates serialized by flytekit carry no version and are version 1.
    * Extra fields are forbidden unless a subclass opts out (to accept another tool's templates).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ExecutorConfig(BaseModel):
    """Common base: versioned, strict about unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
