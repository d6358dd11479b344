# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep secrets out of messages built from a service's own output (logs, error replies)."""

from __future__ import annotations

MASK = "********"


def mask(text, secrets):
    """``text`` with every occurrence of every non-empty secret replaced by ``********``
    (longest first, so that a secret containing another is masked whole)."""
    result = "" if text is None else str(text)
    for secret in sorted({str(s) for s in (secrets or []) if s}, key=len, reverse=True):
        result = result.replace(secret, MASK)
    return result


class FilterModule:
    """llmops.langfuse secret filters."""

    def filters(self):
        return {"mask": mask}
