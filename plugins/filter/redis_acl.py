# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lines of a Redis/Valkey ACL file (aclfile) from the users the redis role defines."""

from __future__ import annotations

import hashlib
import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests run with ansible installed
    class AnsibleFilterError(Exception):
        pass

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def redis_acl_lines(users):
    """``[[name, password, rules], ...]`` -> ``['user NAME on #<sha256 of password> RULES', ...]``.

    Only the SHA-256 of each password is written (Redis compares hashes, ACL LIST prints them);
    an aclfile takes no comment lines, so nothing else is returned."""
    lines = []
    for entry in users or []:
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            raise AnsibleFilterError(f"redis_acl_lines: each user must be [name, password, rules], got {entry!r}")
        name, password, rules = entry
        if not isinstance(name, str) or not _NAME.match(name):
            raise AnsibleFilterError(f"redis_acl_lines: user name {name!r} must be letters, digits, '_', '.', '-'")
        if not password:
            raise AnsibleFilterError(f"redis_acl_lines: user {name} has no password")
        digest = hashlib.sha256(str(password).encode("utf-8")).hexdigest()
        lines.append(f"user {name} on #{digest} {' '.join(str(rules).split())}")
    return lines


class FilterModule:
    """llmops.langfuse Redis filters."""

    def filters(self):
        return {"redis_acl_lines": redis_acl_lines}
