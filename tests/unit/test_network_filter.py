"""llmops.langfuse address filters (plugins/filter/network.py)."""
import pytest
from ansible.errors import AnsibleFilterError
from network import FilterModule, firewall_rules, host_address, resolve_sources

HOSTVARS = {
    "pg1": {"ansible_default_ipv4": {"address": "10.0.0.11"}},
    "pg2": {"ansible_default_ipv4": {"address": "10.0.0.12"}, "llmops_private_address": "192.168.5.12"},
    "app1": {"ansible_default_ipv4": {"address": "10.0.1.21"}},
    "app2": {"ansible_default_ipv4": {"address": "10.0.1.22"}},
    "nofacts": {},
}
GROUPS = {"all": list(HOSTVARS), "langfuse_app": ["app1", "app2"], "postgres": ["pg1", "pg2"], "empty": []}


def test_host_address_prefers_the_explicit_private_address():
    assert host_address("pg1", HOSTVARS) == "10.0.0.11"
    assert host_address("pg2", HOSTVARS) == "192.168.5.12"


def test_host_address_without_facts_says_what_to_do():
    with pytest.raises(AnsibleFilterError, match="no address known for host 'nofacts'.*llmops_private_address"):
        host_address("nofacts", HOSTVARS)
    with pytest.raises(AnsibleFilterError, match="'ghost' is not in the inventory"):
        host_address("ghost", HOSTVARS)


def test_host_address_rejects_a_bad_explicit_address():
    with pytest.raises(AnsibleFilterError, match="not an IP address"):
        host_address("x", {"x": {"llmops_private_address": "10.0.0.300"}})


def test_sources_mix_cidrs_groups_and_hosts_and_split_by_family():
    got = resolve_sources(["langfuse_app", "pg1", "2001:db8::/64", "172.16.0.0/12"], GROUPS, HOSTVARS)
    assert got == {"v4": ["10.0.0.11", "10.0.1.21", "10.0.1.22", "172.16.0.0/12"], "v6": ["2001:db8::/64"]}


def test_overlapping_sources_are_collapsed_for_nftables():
    got = resolve_sources(["10.0.0.0/8", "langfuse_app", "10.0.0.11/32"], GROUPS, HOSTVARS)
    assert got == {"v4": ["10.0.0.0/8"], "v6": []}


def test_empty_group_resolves_to_nothing():
    assert resolve_sources(["empty"], GROUPS, HOSTVARS) == {"v4": [], "v6": []}


def test_unknown_source_names_the_rule():
    with pytest.raises(AnsibleFilterError, match="rule 'x': source 'nope' is neither"):
        firewall_rules([{"name": "x", "port": 1, "sources": ["nope"]}], GROUPS, HOSTVARS, "my_rules")


@pytest.mark.parametrize("rule, message", [
    ({"name": "p", "port": 0, "sources": ["pg1"]}, "rule 'p': port 0 is not a port number"),
    ({"name": "p", "port": 65536, "sources": ["pg1"]}, "rule 'p': port 65536 is not a port number"),
    ({"name": "p", "port": "80", "sources": ["pg1"]}, "rule 'p': port '80' is not a port number"),
    ({"name": "p", "port": True, "sources": ["pg1"]}, "rule 'p': port True is not a port number"),
    ({"name": "p", "port": 80, "proto": "icmp", "sources": ["pg1"]}, "rule 'p': protocol 'icmp' is not one of"),
    ({"name": "p", "port": 80, "sources": []}, "rule 'p': sources must list at least one"),
    ({"name": "p", "port": 80, "sources": "pg1"}, "sources must be a list"),
    ({"name": "p", "port": 80, "sources": ["pg1"], "ports": [1]}, "rule 'p': unknown keys \\['ports'\\]"),
    ({"name": "bad name", "port": 80, "sources": ["pg1"]}, "my_rules\\[0\\]: name 'bad name'"),
    ("not-a-dict", "my_rules\\[0\\] must be a dict"),
])
def test_invalid_rules_are_named_in_the_error(rule, message):
    with pytest.raises(AnsibleFilterError, match=message):
        firewall_rules([rule], GROUPS, HOSTVARS, "my_rules")


def test_duplicate_rule_names_are_refused():
    rule = {"name": "dup", "port": 80, "sources": ["pg1"]}
    with pytest.raises(AnsibleFilterError, match="rule 'dup': the name is used twice"):
        firewall_rules([rule, rule], GROUPS, HOSTVARS)


def test_valid_rules_keep_their_data_and_gain_addresses():
    got = firewall_rules([{"name": "pg", "port": 5432, "sources": ["langfuse_app"]},
                          {"name": "dns", "port": 53, "proto": "udp", "sources": ["::/0"]}], GROUPS, HOSTVARS)
    assert got == [
        {"name": "pg", "port": 5432, "proto": "tcp", "sources": ["langfuse_app"],
         "v4": ["10.0.1.21", "10.0.1.22"], "v6": []},
        {"name": "dns", "port": 53, "proto": "udp", "sources": ["::/0"], "v4": [], "v6": ["::/0"]},
    ]


def test_filters_are_exported():
    assert set(FilterModule().filters()) >= {"host_address", "group_addresses", "resolve_sources",
                                             "firewall_rules"}
