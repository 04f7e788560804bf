"""The one error a code bundle can raise: :class:`BundleRejected`.

Why: a code bundle is user-supplied data; any archive that breaks the extraction rules (see
``reliability-security.md`` section 1) is the user's fault and retrying cannot fix it, so it maps to a
USER, NON_RECOVERABLE error document.

Invariants:
    * ``code`` is ``USER:BundleRejected``; ``member`` names the offending member (or ``None`` when the
      archive as a whole is bad) and ``reason`` says why, for a person.
"""

from __future__ import annotations

from taskbox.errors import UserError

__all__ = ["BundleRejected"]


class BundleRejected(UserError):
    """A code bundle (or a source tree being packed) breaks the bundle rules.

    Args:
        member: The archive member or source path at fault, or ``None`` for the archive as a whole.
        reason: Why it was rejected.
    """

    code = "USER:BundleRejected"

    def __init__(self, member: str | None, reason: str) -> None:
        self.member = member
        self.reason = reason
        if member is None:
            message = f"code bundle rejected: {reason}"
        else:
            message = f"code bundle rejected: member {member!r}: {reason}"
        super().__init__(message)
