"""The small filters: URL pieces (urls.py), image references (images.py), host kind (host.py),
replication slot names (postgresql.py) and cidr_host (network.py)."""
import pytest
from ansible.errors import AnsibleFilterError
from host import is_container
from image_refs import exact_release, image_pinned, image_tag
from network import cidr_host
from postgresql import pg_slot_name
from urls import url_host, url_quote


@pytest.mark.parametrize("address, expected", [
    ("10.0.0.5", "10.0.0.5"),
    ("pg1.example.internal", "pg1.example.internal"),
    ("fd00::5", "[fd00::5]"),
    ("[fd00::5]", "[fd00::5]"),
])
def test_url_host_brackets_ipv6_only(address, expected):
    assert url_host(address) == expected


def test_url_host_refuses_nothing():
    with pytest.raises(AnsibleFilterError):
        url_host("")


def test_url_quote_encodes_every_reserved_character():
    # what Jinja's urlencode leaves alone ('/') must be encoded too, so must ':', '@', '%', ' '
    assert url_quote("lf-pg/te:st@3e9a%71 c2#5b?x") == "lf-pg%2Fte%3Ast%403e9a%2571%20c2%235b%3Fx"
    assert url_quote("plain-Value_1.~") == "plain-Value_1.~"
    assert url_quote(5432) == "5432"
    with pytest.raises(AnsibleFilterError):
        url_quote(None)


@pytest.mark.parametrize("address, expected", [("10.1.2.3", "10.1.2.3/32"), ("fd00::1", "fd00::1/128")])
def test_cidr_host(address, expected):
    assert cidr_host(address) == expected


def test_cidr_host_refuses_a_name():
    with pytest.raises(AnsibleFilterError, match="not an IP address"):
        cidr_host("pg1")


@pytest.mark.parametrize("ref, tag, pinned", [
    ("docker.langfuse.com/langfuse/langfuse:4.16.0", "4.16.0", True),
    ("langfuse/langfuse-worker:3.225.4", "3.225.4", True),
    ("langfuse/langfuse:4.17.0-rc.1", "4.17.0-rc.1", True),
    ("clickhouse/clickhouse-server:26.4.4.38", "26.4.4.38", True),
    ("minio/minio:RELEASE.2025-09-07T16-13-09Z", "RELEASE.2025-09-07T16-13-09Z", True),
    ("registry.local:5000/langfuse/langfuse@sha256:" + "a" * 64, "", True),
    ("langfuse/langfuse:latest", "latest", False),
    ("langfuse/langfuse", "", False),
    ("registry.local:5000/langfuse/langfuse", "", False),
    ("docker.langfuse.com/langfuse/langfuse:4", "4", False),
    ("clickhouse/clickhouse-server:26.4", "26.4", False),
    ("langfuse/langfuse:main", "main", False),
])
def test_image_pinned(ref, tag, pinned):
    assert image_tag(ref) == tag
    assert image_pinned(ref) is pinned


@pytest.mark.parametrize("version, exact", [
    ("4.16.0", True), ("3.225.4", True), ("4.17.0-rc.2", True),
    ("latest", False), ("4", False), ("4.16", False), ("v4.16.0", False), ("4.16.0-beta", False), ("", False),
])
def test_exact_release(version, exact):
    assert exact_release(version) is exact


def test_is_container():
    assert is_container({"virtualization_role": "guest", "virtualization_type": "docker"})
    assert is_container({"virtualization_role": "guest", "virtualization_type": "lxc"})
    assert not is_container({"virtualization_role": "guest", "virtualization_type": "kvm"})
    assert not is_container({"virtualization_role": "host", "virtualization_type": "docker"})
    assert not is_container({})


def test_pg_slot_name():
    assert pg_slot_name("pg2") == "replica_pg2"
    assert pg_slot_name("DB-Replica.2") == "replica_db_replica_2"
    with pytest.raises(AnsibleFilterError, match="63"):
        pg_slot_name("x" * 70)


def test_mask_hides_every_secret_longest_first():
    from masking import mask

    assert mask("auth abc123 and abc123456 failed", ["abc123", "abc123456", ""]) == "auth ******** and ******** failed"
    assert mask(None, ["x"]) == ""
    assert mask("nothing here", []) == "nothing here"


def test_redis_acl_lines_hash_the_passwords():
    import hashlib

    from redis_acl import redis_acl_lines

    lines = redis_acl_lines([["admin", "pw-admin-0123456789", "~* &* +@all"],
                             ["monitoring", "pw-mon-0123456789", "resetkeys -@all\n  +ping +info"]])
    assert lines == [f"user admin on #{hashlib.sha256(b'pw-admin-0123456789').hexdigest()} ~* &* +@all",
                     f"user monitoring on #{hashlib.sha256(b'pw-mon-0123456789').hexdigest()} resetkeys -@all +ping +info"]
    assert all("pw-" not in line for line in lines)
    with pytest.raises(AnsibleFilterError, match="no password"):
        redis_acl_lines([["x", "", "+ping"]])
    with pytest.raises(AnsibleFilterError, match="user name"):
        redis_acl_lines([["bad name", "p", "+ping"]])


def test_has_missing_image():
    from image_refs import has_missing_image

    engine = [{"Id": "sha256:aa", "RepoTags": ["web:4.0.0", "web:latest"]}, {"Id": "sha256:bb", "RepoTags": []}]
    assert not has_missing_image([{"id": "sha256:aa", "tags": ["web:4.0.0"]}], engine)
    assert not has_missing_image([{"id": "sha256:bb", "tags": []}], engine)
    assert has_missing_image([{"id": "sha256:aa", "tags": ["web:4.0.1"]}], engine)  # retagged elsewhere
    assert has_missing_image([{"id": "sha256:cc", "tags": ["x:1.0.0"]}], engine)
    assert has_missing_image([{"id": "sha256:aa", "tags": []}], [])
