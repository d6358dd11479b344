# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address resolution shared by every role: which address a host is reached on, and what a
firewall rule's sources (CIDRs, inventory groups, host names) resolve to."""

from __future__ import annotations

import ipaddress
import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests run with ansible installed
    class AnsibleFilterError(Exception):
        pass

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_PROTOCOLS = ("tcp", "udp")


def host_address(host, hostvars):
    """The private address a host is reached on by the other hosts.

    ``llmops_private_address`` (inventory) wins; otherwise the address of the default IPv4
    route from the host's facts (network subset).
    """
    if host not in hostvars:
        raise AnsibleFilterError(f"host '{host}' is not in the inventory")
    hv = hostvars[host]
    explicit = hv.get("llmops_private_address")
    if explicit:
        try:
            return str(ipaddress.ip_address(str(explicit)))
        except ValueError as exc:
            raise AnsibleFilterError(
                f"llmops_private_address of host '{host}' is not an IP address: {explicit!r}") from exc
    default = hv.get("ansible_default_ipv4") or {}
    if default.get("address"):
        return str(default["address"])
    raise AnsibleFilterError(
        f"no address known for host '{host}': gather its facts (network subset) in this run, "
        "or set llmops_private_address for it in the inventory")


def group_addresses(group, groups, hostvars):
    """Addresses of every host of an inventory group (an absent group has none)."""
    return [host_address(h, hostvars) for h in groups.get(group, [])]


def _networks(source, groups, hostvars, context):
    """One source entry -> list of ip_network objects."""
    if not isinstance(source, str) or not source.strip():
        raise AnsibleFilterError(f"{context}: source {source!r} must be a non-empty string")
    source = source.strip()
    try:
        return [ipaddress.ip_network(source, strict=False)]
    except ValueError:
        pass
    if source in groups:
        return [ipaddress.ip_network(a) for a in group_addresses(source, groups, hostvars)]
    if source in hostvars:
        return [ipaddress.ip_network(host_address(source, hostvars))]
    raise AnsibleFilterError(
        f"{context}: source '{source}' is neither an IP address/CIDR nor an inventory group or host")


def _render(networks):
    out = []
    for net in ipaddress.collapse_addresses(networks):
        out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
    return out


def resolve_sources(sources, groups, hostvars, context="sources"):
    """Resolve CIDRs / group names / host names into collapsed address lists.

    Returns ``{'v4': [...], 'v6': [...]}`` with overlapping entries merged (nftables refuses
    overlapping intervals in one set).
    """
    if isinstance(sources, str) or not isinstance(sources, (list, tuple)):
        raise AnsibleFilterError(f"{context}: sources must be a list, got {sources!r}")
    nets = []
    for source in sources:
        nets.extend(_networks(source, groups, hostvars, context))
    return {
        "v4": _render([n for n in nets if n.version == 4]),
        "v6": _render([n for n in nets if n.version == 6]),
    }


def firewall_rules(rules, groups, hostvars, where="firewall rules"):
    """Validate allow rules and resolve their sources.

    A rule is ``{name, port, proto (tcp|udp, default tcp), sources: [CIDR | group | host]}``.
    Every error names the rule and the variable it came from. The result adds ``v4``/``v6``
    address lists; a rule whose groups are all empty resolves to nothing and opens nothing.
    """
    if not isinstance(rules, (list, tuple)):
        raise AnsibleFilterError(f"{where} must be a list of rules, got {type(rules).__name__}")
    seen = set()
    result = []
    for index, rule in enumerate(rules):
        label = f"{where}[{index}]"
        if not isinstance(rule, dict):
            raise AnsibleFilterError(f"{label} must be a dict, got {rule!r}")
        name = rule.get("name")
        if not isinstance(name, str) or not _RULE_NAME.match(name):
            raise AnsibleFilterError(
                f"{label}: name {name!r} must be 1-63 characters of letters, digits, '_', '.', ':', '-'")
        label = f"{where} rule '{name}'"
        if name in seen:
            raise AnsibleFilterError(f"{label}: the name is used twice")
        seen.add(name)
        unknown = set(rule) - {"name", "port", "proto", "sources"}
        if unknown:
            raise AnsibleFilterError(f"{label}: unknown keys {sorted(unknown)}")
        port = rule.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise AnsibleFilterError(f"{label}: port {port!r} is not a port number (1-65535)")
        proto = rule.get("proto", "tcp")
        if proto not in _PROTOCOLS:
            raise AnsibleFilterError(f"{label}: protocol {proto!r} is not one of {', '.join(_PROTOCOLS)}")
        sources = rule.get("sources")
        if not sources:
            raise AnsibleFilterError(f"{label}: sources must list at least one CIDR, group or host")
        resolved = resolve_sources(sources, groups, hostvars, context=label)
        result.append({"name": name, "port": port, "proto": proto, "sources": list(sources), **resolved})
    return result


def cidr_host(address):
    """One address as a CIDR of exactly that host: /32 for IPv4, /128 for IPv6."""
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError as exc:
        raise AnsibleFilterError(f"cidr_host: {address!r} is not an IP address") from exc
    return f"{ip}/{ip.max_prefixlen}"


class FilterModule:
    """llmops.langfuse address filters."""

    def filters(self):
        return {
            "cidr_host": cidr_host,
            "host_address": host_address,
            "group_addresses": group_addresses,
            "resolve_sources": resolve_sources,
            "firewall_rules": firewall_rules,
        }
