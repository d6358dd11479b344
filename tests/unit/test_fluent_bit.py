"""The fluent_bit role's configuration builder (plugins/filter/fluent_bit.py) and the file the
role writes from it (roles/fluent_bit/templates/fluent-bit.yaml.j2), parsed back as YAML.

Fluent Bit itself is not installed on this machine (no Debian package; its repository is
unreachable): these tests check the structure against the option names of Fluent Bit v5.1.1's
source, not against the daemon. The daemon's own check (fluent-bit --dry-run) runs on real hosts
only, before the file is activated."""
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import comment, to_nice_yaml
from fluent_bit import OUTPUT_TYPES, fluent_bit_config, openpgp_fingerprint

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
TEMPLATES = ROOT / "roles" / "fluent_bit" / "templates"

ES_PASSWORD = "es-Test-Secret-7Hq2Lm9Zx"
S3_SECRET = "s3-Test-Secret-4Vb8Nm2Qw"

# option names of Fluent Bit v5.1.1 (fluent/fluent-bit, tag v5.1.1): generic output properties
# (src/flb_output.c, flb_output_set_property) and the config maps of the output plugins
# (plugins/out_es/es.c, out_opensearch/opensearch.c, out_loki/loki.c, out_forward/forward.c,
# out_s3/s3.c) the builder writes; the tests use some of each
GENERIC_OUTPUT = {"name", "alias", "match", "match_regex", "host", "port", "tls", "tls.verify", "tls.ca_file",
                  "retry_limit", "storage.total_limit_size", "workers"}
PLUGIN_OPTIONS = {
    "es": {"index", "suppress_type_name", "http_user", "http_passwd", "http_api_key", "cloud_id", "cloud_auth",
           "logstash_format", "logstash_prefix"},
    "opensearch": {"index", "suppress_type_name", "http_user", "http_passwd", "logstash_format"},
    "loki": {"uri", "tenant_id", "labels", "http_user", "http_passwd", "bearer_token", "line_format"},
    "forward": {"shared_key", "self_hostname", "username", "password", "require_ack_response"},
    "s3": {"bucket", "region", "endpoint", "store_dir", "total_file_size", "upload_timeout", "use_put_object"},
}
INPUT_OPTIONS = {
    # src/flb_input.c and plugins/in_systemd/systemd.c, plugins/in_tail/tail.c
    "systemd": {"name", "alias", "tag", "storage.type", "systemd_filter", "systemd_filter_type", "read_from_tail",
                "strip_underscores", "db"},
    "tail": {"name", "alias", "tag", "storage.type", "path", "multiline.parser", "parser", "db", "skip_long_lines",
             "refresh_interval"},
}
FILTER_OPTIONS = {
    # src/flb_filter.c, plugins/filter_parser/filter_parser.c, plugins/filter_record_modifier
    "parser": {"name", "alias", "match", "key_name", "parser", "reserve_data"},
    "record_modifier": {"name", "alias", "match", "record"},
}
# top-level sections of the YAML format (docs: administration/configuring-fluent-bit/yaml.md)
SECTIONS = {"env", "includes", "service", "pipeline", "parsers", "multiline_parsers", "plugins",
            "upstream_servers", "extensions"}


def host(**extra):
    return {"name": "lb1", "groups": ["langfuse_lb", "monitoring", "all"],
            "journal_units": ["nginx.service", "postgresql@15-main.service"], "journal_priority": 3,
            "docker_logs": True, "nginx_access_log": "/var/log/nginx/langfuse_access.json", **extra}


def es_output(**extra):
    return {"name": "central-es", "type": "elasticsearch",
            "options": {"host": "es.internal", "port": 9200, "tls": "on", "tls.verify": "on", "http_user": "fluentbit",
                        "index": "langfuse-logs", "suppress_type_name": "on"},
            "secrets": {"http_passwd": ES_PASSWORD}, **extra}


ALL_OUTPUTS = [
    es_output(),
    {"name": "search", "type": "opensearch", "options": {"host": "os.internal", "port": 9200, "http_user": "fb"},
     "secrets": {"http_passwd": "os-Test-Secret-1Aa"}},
    {"name": "loki", "type": "loki", "match": "journal.*",
     "options": {"host": "loki.internal", "port": 3100, "labels": "job=fluent-bit"},
     "secrets": {"bearer_token": "loki-Test-Token-9Zz"}},
    {"name": "relay", "type": "forward", "options": {"host": "relay.internal", "port": 24224, "self_hostname": "lb1"},
     "secrets": {"shared_key": "fwd-Test-Key-3Kk"}},
    {"name": "archive", "type": "s3", "retry_limit": 10, "buffer_limit": "2G",
     "options": {"bucket": "logs", "region": "eu-central-1", "total_file_size": "50M"},
     "secrets": {"access_key_id": "AKIATESTKEY", "secret_access_key": S3_SECRET}},
]


def build(outputs=None, **settings):
    return fluent_bit_config({"outputs": ALL_OUTPUTS if outputs is None else outputs, "host": host(), **settings})


def render(name, built):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters.update({"comment": comment, "to_nice_yaml": to_nice_yaml})
    return env.get_template(name).render(ansible_managed="Ansible managed", __fluent_bit_built=built)


def test_the_fingerprints_are_those_gpg_prints():
    # the keys were made for these tests with gpg 2.2.40 (--quick-gen-key rsa2048 / ed25519);
    # `gpg --with-colons --show-keys FILE` printed these fpr records
    assert openpgp_fingerprint((DATA / "openpgp-test-rsa.asc").read_text()) == "E95F256E9010CBB106C69CDF4BC9C0D93F6D7CC2"
    assert openpgp_fingerprint((DATA / "openpgp-test-ed25519.asc").read_text()) == \
        "29328847BA126C0F9A92BACFE353A26BD6C732CE"


@pytest.mark.parametrize("text, message", [
    ("<html><body>Not Found</body></html>", "not an ASCII-armoured OpenPGP public key"),
    ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!notbase64\n-----END PGP PUBLIC KEY BLOCK-----\n", "not valid base64"),
    ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n", "no OpenPGP packet"),
])
def test_a_page_that_is_no_key_is_refused(text, message):
    with pytest.raises(AnsibleFilterError, match=message):
        openpgp_fingerprint(text)


def test_a_changed_key_has_another_fingerprint():
    text = (DATA / "openpgp-test-rsa.asc").read_text()
    lines = text.splitlines()
    lines[3] = lines[3][:10] + ("A" if lines[3][10] != "A" else "B") + lines[3][11:]
    assert openpgp_fingerprint("\n".join(lines)) != "E95F256E9010CBB106C69CDF4BC9C0D93F6D7CC2"


def test_the_rendered_file_has_fluent_bits_sections_and_no_secret():
    built = build()
    text = render("fluent-bit.yaml.j2", built)
    assert text.startswith("#")
    doc = yaml.safe_load(text)
    assert set(doc) <= SECTIONS and {"service", "parsers", "pipeline"} <= set(doc)
    assert set(doc["pipeline"]) == {"inputs", "filters", "outputs"}
    for section in ("inputs", "filters", "outputs"):
        assert doc["pipeline"][section] and all(isinstance(e, dict) and e.get("name") for e in doc["pipeline"][section])
    for secret in built["env"].values():
        assert secret not in text
    # every ${NAME} the file references is in the environment file, and nothing else is
    referenced = {value[2:-1] for o in doc["pipeline"]["outputs"] for value in o.values()
                  if isinstance(value, str) and value.startswith("${")}
    assert referenced == set(built["env"]) - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_every_option_written_is_one_fluent_bit_5_1_1_knows():
    doc = yaml.safe_load(render("fluent-bit.yaml.j2", build()))
    for output in doc["pipeline"]["outputs"]:
        unknown = set(output) - GENERIC_OUTPUT - PLUGIN_OPTIONS[output["name"]]
        assert not unknown, (output["alias"], unknown)
    for entry in doc["pipeline"]["inputs"]:
        assert not set(entry) - INPUT_OPTIONS[entry["name"]], entry
    for entry in doc["pipeline"]["filters"]:
        assert not set(entry) - FILTER_OPTIONS[entry["name"]], entry
    assert {o["name"] for o in doc["pipeline"]["outputs"]} == {t["plugin"] for t in OUTPUT_TYPES.values()}


def test_nothing_is_lost_while_an_output_is_unreachable_up_to_its_limit():
    doc = build()["config"]
    assert doc["service"]["storage.path"] == "/var/lib/fluent-bit/storage"
    assert all(i["storage.type"] == "filesystem" for i in doc["pipeline"]["inputs"])
    by_alias = {o["alias"]: o for o in doc["pipeline"]["outputs"]}
    assert by_alias["central-es"]["retry_limit"] == "no_limits"
    assert by_alias["central-es"]["storage.total_limit_size"] == "512M"
    assert by_alias["archive"]["retry_limit"] == "10" and by_alias["archive"]["storage.total_limit_size"] == "2G"
    assert by_alias["archive"]["store_dir"] == "/var/lib/fluent-bit/s3/archive"
    limited = build([es_output()], retry_limit="5", buffer_limit="1G")["config"]["pipeline"]["outputs"][0]
    assert (limited["retry_limit"], limited["storage.total_limit_size"]) == ("5", "1G")


def test_inputs_follow_the_host():
    doc = build()["config"]
    inputs = {i["alias"]: i for i in doc["pipeline"]["inputs"]}
    assert inputs["journal"]["systemd_filter"] == [
        "_SYSTEMD_UNIT=nginx.service", "_SYSTEMD_UNIT=postgresql@15-main.service",
        "PRIORITY=0", "PRIORITY=1", "PRIORITY=2", "PRIORITY=3"]
    assert inputs["journal"]["systemd_filter_type"] == "or"
    assert inputs["docker"]["path"] == "/var/lib/docker/containers/*/*-json.log"
    assert inputs["docker"]["multiline.parser"] == "docker"
    assert inputs["nginx_access"]["parser"] == "llmops_nginx_json"
    filters = doc["pipeline"]["filters"]
    assert filters[0] == {"name": "parser", "alias": "docker_json", "match": "docker.*", "key_name": "log",
                          "parser": "llmops_json", "reserve_data": "on"}
    assert filters[1]["record"] == ["hostname lb1", "inventory_groups langfuse_lb,monitoring"]
    # a database host without Docker or nginx: the journal only
    bare = fluent_bit_config({"outputs": [es_output()], "host": host(
        docker_logs=False, nginx_access_log="", journal_units=["postgresql@15-main.service"], groups=["postgres_primary"])})
    assert [i["alias"] for i in bare["config"]["pipeline"]["inputs"]] == ["journal"]
    assert [f["name"] for f in bare["config"]["pipeline"]["filters"]] == ["record_modifier"]


def test_extra_inputs_parsers_filters_and_service_settings():
    built = build([es_output()], inputs=[{"name": "tail", "tag": "audit", "path": "/var/log/audit/audit.log"}],
                  parsers=[{"name": "syslog5424", "format": "regex", "regex": "^x$"}],
                  filters=[{"name": "grep", "match": "journal.*", "exclude": "MESSAGE ^DEBUG"}],
                  service={"http_server": "on", "http_listen": "127.0.0.1", "flush": 5})["config"]
    assert built["pipeline"]["inputs"][-1] == {"name": "tail", "tag": "audit", "path": "/var/log/audit/audit.log",
                                               "storage.type": "filesystem"}
    assert built["parsers"][-1]["name"] == "syslog5424"
    assert built["pipeline"]["filters"][-1]["name"] == "grep"
    assert (built["service"]["http_server"], built["service"]["flush"]) == ("on", 5)
    assert built["service"]["storage.path"]


@pytest.mark.parametrize("outputs, message", [
    ([{**es_output(), "type": "splunk"}],
     "output 'central-es': type 'splunk' is not one of elasticsearch, forward, loki, opensearch, s3"),
    ([{"name": "central-es", "type": "elasticsearch", "options": {"port": 9200}}],
     "output 'central-es' (elasticsearch): option host or cloud_id is required"),
    ([{"name": "archive", "type": "s3", "options": {"region": "eu-central-1"}}],
     "output 'archive' (s3): option bucket is required"),
    ([{"name": "loki", "type": "loki", "options": {"host": "loki", "http_passwd": "x"}}],
     "output 'loki': option http_passwd is a credential: give it in secrets"),
    ([{"name": "relay", "type": "forward", "options": {"host": "relay", "tls.key_passwd": "x"}}],
     "output 'relay': option tls.key_passwd is a credential"),
    ([es_output(secrets={"http_passwd": ""})], "output 'central-es': secret http_passwd is empty"),
    ([es_output(secrets={"http_passwd": "it's"})], "output 'central-es': secret http_passwd contains a single quote"),
    ([es_output(), es_output()], "output names must be unique: central-es"),
    ([es_output(hosts="x")], "output 'central-es': unknown keys hosts"),
    ([es_output(options={"host": "es", "match": "docker.*"})], "option match is set by the role: use the output's key"),
    ([es_output(retry_limit="forever")], "retry_limit 'forever' must be a positive number"),
    ([es_output(buffer_limit="lots")], "buffer_limit 'lots' must be a size"),
    ([es_output(name="Central ES")], "name 'Central ES' must be 1-63 lower-case letters"),
    ([es_output(options={"host": "es", "processors": {"logs": []}})], "option processors is a mapping"),
    ([{"name": "a", "type": "s3", "options": {"bucket": "x"}, "secrets": {"access_key_id": "A1"}},
      {"name": "b", "type": "s3", "options": {"bucket": "y"}, "secrets": {"access_key_id": "B2"}}],
     "would reuse the environment variable AWS_ACCESS_KEY_ID of output 'a'"),
    ([], "fluent_bit_outputs is empty"),
])
def test_a_bad_output_fails_naming_it(outputs, message):
    with pytest.raises(AnsibleFilterError) as error:
        build(outputs)
    assert message in str(error.value)
    # the message names the output and the option, never a secret's value
    for entry in outputs:
        for value in (entry.get("secrets") or {}).values():
            assert not value or value not in str(error.value)


def test_two_s3_outputs_may_share_one_key_pair():
    pair = {"access_key_id": "AKIA1", "secret_access_key": S3_SECRET}
    built = build([{"name": "a", "type": "s3", "options": {"bucket": "x"}, "secrets": pair},
                   {"name": "b", "type": "s3", "options": {"bucket": "y"}, "secrets": pair}])
    assert built["env"] == {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": S3_SECRET}


@pytest.mark.parametrize("bad, message", [
    ({"journal_priority": 9}, "journal_priority 9 must be -1"),
    ({"journal_priority": -1, "journal_units": [], "docker_logs": False, "nginx_access_log": ""}, "no input on lb1"),
    ({"name": ""}, "host.name is empty"),
])
def test_bad_host_data_is_refused(bad, message):
    with pytest.raises(AnsibleFilterError, match=message):
        fluent_bit_config({"outputs": [es_output()], "host": host(**bad)})


def test_an_input_without_a_tag_is_refused():
    with pytest.raises(AnsibleFilterError, match="input tail has no tag"):
        build([es_output()], inputs=[{"name": "tail", "path": "/var/log/x.log"}])


def test_the_environment_file_holds_the_secrets_quoted():
    built = build()
    text = render("llmops.env.j2", built)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [f"{name}='{value}'" for name, value in sorted(built["env"].items())]
    assert f"FLUENT_BIT_CENTRAL_ES_HTTP_PASSWD='{ES_PASSWORD}'" in lines
    assert f"AWS_SECRET_ACCESS_KEY='{S3_SECRET}'" in lines
