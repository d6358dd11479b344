# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kind of host the facts describe."""

from __future__ import annotations

# ansible_virtualization_type values of a container guest: the kernel (sysctls, transparent
# huge pages, the clock) belongs to the container's host there, and /proc/sys is read-only
CONTAINER_TYPES = frozenset(
    ["container", "containerd", "docker", "lxc", "openvz", "podman", "systemd-nspawn"])


def is_container(facts):
    """True when ``ansible_facts`` (virtual subset) describe a container guest."""
    facts = facts or {}
    return facts.get("virtualization_role", "") == "guest" and facts.get("virtualization_type", "") in CONTAINER_TYPES


class FilterModule:
    """llmops.langfuse host filters."""

    def filters(self):
        return {"is_container": is_container}
