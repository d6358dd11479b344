# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names the postgresql role derives from the inventory."""

from __future__ import annotations

import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests run with ansible installed
    class AnsibleFilterError(Exception):
        pass

SLOT_PREFIX = "replica_"
_MAX_NAME = 63  # NAMEDATALEN - 1


def pg_slot_name(host, prefix=SLOT_PREFIX):
    """The physical replication slot (and application_name) of a replica: the prefix plus the
    inventory name in lower case, every character other than a-z, 0-9 and _ replaced by _."""
    if not isinstance(host, str) or not host:
        raise AnsibleFilterError(f"pg_slot_name: expected an inventory host name, got {host!r}")
    name = prefix + re.sub(r"[^a-z0-9_]", "_", host.lower())
    if len(name) > _MAX_NAME:
        raise AnsibleFilterError(
            f"pg_slot_name: the slot name of host '{host}' would be {len(name)} characters; "
            f"PostgreSQL allows {_MAX_NAME}: use a shorter inventory name")
    return name


class FilterModule:
    """llmops.langfuse PostgreSQL naming filters."""

    def filters(self):
        return {"pg_slot_name": pg_slot_name}
