# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fluent Bit's YAML configuration (fluent-bit.yaml) as data, and the fingerprint of an
OpenPGP key (the signing key of Fluent Bit's apt repository).

``fluent_bit_config`` is a pure function: the role's lists (inputs, parsers, filters, outputs)
and a few host facts in, ``{"config": <fluent-bit.yaml as a dict>, "env": {NAME: secret}}``
out. Secrets of outputs never appear in ``config``: each becomes a ``${NAME}`` reference that
Fluent Bit replaces from its environment (src/flb_output.c, flb_output_set_property, at
v5.1.1), and the value goes to ``env`` (the role writes it to a 0600 file the systemd unit
reads with EnvironmentFile=).

Plugin and option names are those of Fluent Bit v5.1.1 (plugins/out_es/es.c,
out_opensearch/opensearch.c, out_loki/loki.c, out_forward/forward.c, out_s3/s3.c,
src/flb_output.c, src/flb_input.c); Fluent Bit compares property names case-insensitively, the
YAML written here uses lower case as its documentation does."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests run with ansible installed
    class AnsibleFilterError(Exception):
        pass

# output type (the role's name) -> Fluent Bit plugin, options of which one is required (any of
# each tuple), the options that carry a credential (they must come through "secrets"), and the
# secrets that are environment variables of the process rather than plugin options (the AWS
# credential chain of out_s3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
# src/aws/flb_aws_credentials.c)
OUTPUT_TYPES = {
    "elasticsearch": {"plugin": "es", "required": [("host", "cloud_id")],
                      "secret_options": {"http_passwd", "http_api_key", "cloud_auth"}, "env_secrets": {}},
    "opensearch": {"plugin": "opensearch", "required": [("host",)],
                   "secret_options": {"http_passwd"}, "env_secrets": {}},
    "loki": {"plugin": "loki", "required": [("host",)],
             "secret_options": {"http_passwd", "bearer_token"}, "env_secrets": {}},
    "forward": {"plugin": "forward", "required": [("host",)],
                "secret_options": {"shared_key", "password"}, "env_secrets": {}},
    "s3": {"plugin": "s3", "required": [("bucket",)],
           "secret_options": {"authorization_endpoint_password", "authorization_endpoint_bearer_token"},
           "env_secrets": {"access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY"}},
}
# options of every output that the role sets from the output's own keys
RESERVED_OUTPUT_OPTIONS = {"name": "type", "alias": "name", "match": "match", "match_regex": "match",
                           "retry_limit": "retry_limit", "storage.total_limit_size": "buffer_limit"}
# credential-looking options of any plugin: refused in "options" (give them in "secrets")
SECRET_WORDS = ("passwd", "password", "secret", "token", "api_key", "shared_key", "cloud_auth")
OUTPUT_KEYS = {"name", "type", "match", "retry_limit", "buffer_limit", "options", "secrets"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SIZE = re.compile(r"^[0-9]+([KMG]B?)?$", re.I)
_RETRY = re.compile(r"^([1-9][0-9]*|no_limits|no_retries|false|off)$")

# parsers the built-in inputs use (the package's parsers.conf is classic format and not loaded)
PARSERS = [
    # the "log" field of a container's line, when the program logs JSON (Langfuse with
    # LANGFUSE_LOG_FORMAT=json); the time stays Docker's
    {"name": "llmops_json", "format": "json"},
    # nginx's langfuse_json access log: "time" is $time_iso8601 (2026-12-01T21:30:00+00:00)
    {"name": "llmops_nginx_json", "format": "json", "time_key": "time",
     "time_format": "%Y-%m-%dT%H:%M:%S%z", "time_keep": "on"},
]
DOCKER_LOGS = "/var/lib/docker/containers/*/*-json.log"


def _fail(message):
    raise AnsibleFilterError(f"fluent_bit_config: {message}")


def _env_name(output, option):
    return re.sub(r"[^A-Z0-9]", "_", f"FLUENT_BIT_{output}_{option}".upper())


def _check_env_value(where, value):
    if value is None or str(value) == "":
        _fail(f"{where} is empty: set it (from the vault)")
    text = str(value)
    # the environment file quotes every value in single quotes (systemd.exec, EnvironmentFile=)
    if "'" in text or "\n" in text or "\r" in text or "\x00" in text:
        _fail(f"{where} contains a single quote, a line break or a NUL byte, which the environment file "
              "of the systemd unit cannot carry")
    return text


def _plain_value(where, value):
    if isinstance(value, dict):
        _fail(f"{where} is a mapping: Fluent Bit takes scalars or lists of scalars here")
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        _fail(f"{where} is a nested list: Fluent Bit takes scalars or lists of scalars here")
    return value


def _output(entry, index, settings, env, env_owner):
    if not isinstance(entry, dict):
        _fail(f"fluent_bit_outputs[{index}] is not a mapping")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        _fail(f"fluent_bit_outputs[{index}]: name {name!r} must be 1-63 lower-case letters, digits, '-' or '_'")
    where = f"output '{name}'"
    unknown = sorted(set(entry) - OUTPUT_KEYS)
    if unknown:
        _fail(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(OUTPUT_KEYS))}; "
              "plugin options go into options)")
    kind = entry.get("type")
    if kind not in OUTPUT_TYPES:
        _fail(f"{where}: type {kind!r} is not one of {', '.join(sorted(OUTPUT_TYPES))}")
    spec = OUTPUT_TYPES[kind]
    options = entry.get("options") or {}
    secrets = entry.get("secrets") or {}
    if not isinstance(options, dict) or not isinstance(secrets, dict):
        _fail(f"{where}: options and secrets must be mappings")
    for option in options:
        key = str(option).lower()
        if key in RESERVED_OUTPUT_OPTIONS:
            _fail(f"{where}: option {option} is set by the role: use the output's key "
                  f"'{RESERVED_OUTPUT_OPTIONS[key]}'")
        if key in spec["secret_options"] or key in spec["env_secrets"] or any(w in key for w in SECRET_WORDS):
            _fail(f"{where}: option {option} is a credential: give it in secrets (it goes to the 0600 "
                  "environment file, never into fluent-bit.yaml)")
    for option in secrets:
        key = str(option).lower()
        if key in RESERVED_OUTPUT_OPTIONS or key in {str(o).lower() for o in options}:
            _fail(f"{where}: secret {option} is also an option or set by the role")
    given = {str(o).lower() for o in list(options) + list(secrets)}
    for choices in spec["required"]:
        if not given.intersection(choices):
            _fail(f"{where} ({kind}): option {' or '.join(choices)} is required")
    match = entry.get("match", "*")
    if not isinstance(match, str) or not match:
        _fail(f"{where}: match must be a tag pattern such as '*' or 'docker.*'")
    retry = str(entry.get("retry_limit", settings.get("retry_limit", "no_limits"))).lower()
    if not _RETRY.match(retry):
        _fail(f"{where}: retry_limit {retry!r} must be a positive number, no_limits or no_retries")
    limit = str(entry.get("buffer_limit", settings.get("buffer_limit", "512M")))
    if not _SIZE.match(limit):
        _fail(f"{where}: buffer_limit {limit!r} must be a size such as 512M or 2G")

    out = {"name": spec["plugin"], "alias": name, "match": match, "retry_limit": retry,
           "storage.total_limit_size": limit}
    if kind == "s3" and "store_dir" not in {str(o).lower() for o in options}:
        # out_s3 stages uploads in /tmp/fluent-bit/s3 by default: keep them beside the buffer
        out["store_dir"] = f"{settings.get('state_dir', '/var/lib/fluent-bit')}/s3/{name}"
    for option, value in options.items():
        out[str(option)] = _plain_value(f"{where}: option {option}", value)
    for option, value in secrets.items():
        key = str(option).lower()
        variable = spec["env_secrets"].get(key) or _env_name(name, key)
        text = _check_env_value(f"{where}: secret {option}", value)
        if variable in env and (env[variable] != text or key not in spec["env_secrets"]):
            _fail(f"{where}: secret {option} would reuse the environment variable {variable} of "
                  f"{env_owner[variable]} with another value (Fluent Bit has one process environment: "
                  "S3 outputs share one AWS key pair)")
        env[variable] = text
        env_owner.setdefault(variable, where)
        if key not in spec["env_secrets"]:
            out[str(option)] = "${" + variable + "}"
    return out


def _entries(kind, entries, required=("name",)):
    result = []
    for index, entry in enumerate(entries or []):
        if not isinstance(entry, dict):
            _fail(f"fluent_bit_{kind}[{index}] is not a mapping")
        for key in required:
            if not entry.get(key):
                _fail(f"fluent_bit_{kind}[{index}] ({entry.get('name', 'no name')}) has no {key}")
        result.append(copy.deepcopy(entry))
    return result


def fluent_bit_config(settings):
    """The role's data -> ``{"config": fluent-bit.yaml as a dict, "env": {variable: secret}}``.

    ``settings`` keys: ``service`` (dict merged over the defaults below), ``state_dir``,
    ``retry_limit``, ``buffer_limit``, ``host_key``, ``groups_key``, ``inputs``, ``parsers``,
    ``filters``, ``outputs`` (lists) and ``host``: ``name``, ``groups`` (inventory groups),
    ``journal_units`` (systemd units whose journal is shipped), ``journal_priority`` (entries of
    any unit up to this syslog priority are shipped too; -1 for none), ``docker_logs`` (bool),
    ``nginx_access_log`` (path, empty for none)."""
    if not isinstance(settings, dict):
        _fail("expects a mapping of the role's settings")
    state_dir = settings.get("state_dir") or "/var/lib/fluent-bit"
    host = settings.get("host") or {}
    if not host.get("name"):
        _fail("host.name is empty")
    outputs_in = settings.get("outputs") or []
    if not isinstance(outputs_in, list) or not outputs_in:
        _fail("fluent_bit_outputs is empty: with nowhere to send them, logs would only fill the buffer")

    names = [e.get("name") for e in outputs_in if isinstance(e, dict)]
    duplicates = sorted({str(n) for n in names if names.count(n) > 1})
    if duplicates:
        _fail(f"output names must be unique: {', '.join(duplicates)} given more than once")
    env, env_owner, outputs = {}, {}, []
    for index, entry in enumerate(outputs_in):
        outputs.append(_output(entry, index, settings, env, env_owner))

    inputs = []
    units = sorted(set(host.get("journal_units") or []))
    priority = host.get("journal_priority", -1)
    if priority is None or not isinstance(priority, int) or isinstance(priority, bool) or not -1 <= priority <= 7:
        _fail(f"host.journal_priority {priority!r} must be -1 (none) or a syslog priority 0-7")
    # the journal matches joined by "or" (sd_journal_add_disjunction, plugins/in_systemd/systemd_config.c):
    # every entry of the listed units, and entries of any unit up to that priority (0 emerg .. 3 err)
    matches = [f"_SYSTEMD_UNIT={u}" for u in units] + [f"PRIORITY={p}" for p in range(priority + 1)]
    if matches:
        inputs.append({"name": "systemd", "alias": "journal", "tag": "journal.*",
                       "systemd_filter": matches,
                       "systemd_filter_type": "or", "read_from_tail": "on", "strip_underscores": "on",
                       "db": f"{state_dir}/journal.db"})
    if host.get("docker_logs"):
        inputs.append({"name": "tail", "alias": "docker", "tag": "docker.*", "path": DOCKER_LOGS,
                       "multiline.parser": "docker", "db": f"{state_dir}/docker.db",
                       "skip_long_lines": "on", "refresh_interval": 10})
    if host.get("nginx_access_log"):
        inputs.append({"name": "tail", "alias": "nginx_access", "tag": "nginx.access",
                       "path": host["nginx_access_log"], "parser": "llmops_nginx_json",
                       "db": f"{state_dir}/nginx.db", "skip_long_lines": "on"})
    inputs += _entries("inputs", settings.get("inputs"))
    for index, entry in enumerate(inputs):
        if not entry.get("tag") and entry["name"] != "forward":
            _fail(f"input {entry.get('alias', entry['name'])} has no tag (every input but forward needs one)")
        # what makes an unreachable output lose nothing: chunks are kept on disk (storage.path)
        # until delivered, up to each output's storage.total_limit_size
        entry.setdefault("storage.type", "filesystem")
    if not inputs:
        _fail(f"no input on {host['name']}: none of the journal units runs here, there are no "
              "Docker or nginx logs, fluent_bit_journal_priority is -1 and fluent_bit_inputs is empty")

    filters = []
    if host.get("docker_logs"):
        filters.append({"name": "parser", "alias": "docker_json", "match": "docker.*", "key_name": "log",
                        "parser": "llmops_json", "reserve_data": "on"})
    groups = sorted(g for g in host.get("groups") or [] if g not in ("all", "ungrouped"))
    record = [f"{settings.get('host_key') or 'hostname'} {host['name']}"]
    if groups:
        record.append(f"{settings.get('groups_key') or 'inventory_groups'} {','.join(groups)}")
    filters.append({"name": "record_modifier", "alias": "inventory", "match": "*", "record": record})
    filters += _entries("filters", settings.get("filters"))

    service = {"flush": 1, "log_level": "info", "daemon": "off", "http_server": "off",
               "storage.path": f"{state_dir}/storage", "storage.sync": "normal", "storage.checksum": "off",
               "storage.max_chunks_up": 128, "storage.backlog.mem_limit": "5M"}
    service.update(settings.get("service") or {})
    if not service.get("storage.path"):
        _fail("service storage.path is empty: without it no input can buffer on disk")

    parsers = copy.deepcopy(PARSERS) + _entries("parsers", settings.get("parsers"), ("name", "format"))
    config = {"service": service, "parsers": parsers,
              "pipeline": {"inputs": inputs, "filters": filters, "outputs": outputs}}
    return {"config": config, "env": env}


def _dearmor(text):
    lines = [line.strip() for line in str(text).strip().splitlines()]
    try:
        start = lines.index("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        end = lines.index("-----END PGP PUBLIC KEY BLOCK-----", start)
    except ValueError:
        raise AnsibleFilterError("openpgp_fingerprint: the text is not an ASCII-armoured OpenPGP public key") from None
    body = lines[start + 1:end]
    while body and body[0] and ":" in body[0]:  # armour headers (Version: ..., Comment: ...)
        body.pop(0)
    data = "".join(line for line in body if line and not line.startswith("="))  # "=XXXX" is the CRC
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise AnsibleFilterError("openpgp_fingerprint: the armoured key is not valid base64") from None


def _first_packet(data):
    if not data or not data[0] & 0x80:
        raise AnsibleFilterError("openpgp_fingerprint: no OpenPGP packet at the start of the key")
    first = data[0]
    if first & 0x40:  # new format (RFC 9580 4.2.1)
        tag, pos = first & 0x3F, 1
        octet = data[pos]
        if octet < 192:
            length, pos = octet, pos + 1
        elif octet < 224:
            length, pos = ((octet - 192) << 8) + data[pos + 1] + 192, pos + 2
        elif octet == 255:
            length, pos = int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5
        else:
            raise AnsibleFilterError("openpgp_fingerprint: a public key packet has no partial lengths")
    else:  # legacy format
        tag, size = (first >> 2) & 0x0F, first & 0x03
        if size == 3:
            raise AnsibleFilterError("openpgp_fingerprint: a public key packet has a definite length")
        width = (1, 2, 4)[size]
        length, pos = int.from_bytes(data[1:1 + width], "big"), 1 + width
    body = data[pos:pos + length]
    if len(body) != length:
        raise AnsibleFilterError("openpgp_fingerprint: the key is truncated")
    return tag, body


def openpgp_fingerprint(text):
    """Fingerprint (upper-case hex, no spaces) of the primary key of an ASCII-armoured OpenPGP
    public key: SHA-1 over 0x99, a two-octet length and the key packet for version 4 keys,
    SHA-256 with 0x9B (v6) or 0x9A (v5) and a four-octet length (RFC 9580, 5.5.4)."""
    tag, body = _first_packet(_dearmor(text))
    if tag != 6:
        raise AnsibleFilterError(f"openpgp_fingerprint: the first packet is of type {tag}, not a public key (6)")
    version = body[0] if body else 0
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()  # nosec B324 - RFC 9580
    if version in (5, 6):
        prefix = b"\x9b" if version == 6 else b"\x9a"
        return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    raise AnsibleFilterError(f"openpgp_fingerprint: key version {version} is not supported (4, 5, 6 are)")


class FilterModule:
    """llmops.langfuse Fluent Bit filters."""

    def filters(self):
        return {"fluent_bit_config": fluent_bit_config, "openpgp_fingerprint": openpgp_fingerprint}
