#!/usr/bin/python
# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one Redis (or Sentinel) command with credentials passed as a module argument."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_command
short_description: Run one Redis or Sentinel command, authenticating without a command line
version_added: 0.1.0
description:
  - Connects to a Redis, Valkey or Sentinel server (plain TCP or TLS), authenticates with
    O(user) and O(password) when a password is given, sends O(command) and returns the reply.
  - The password travels as a module argument (hidden with C(no_log)), never in a command line
    or an environment variable of the managed host, where other local users could read it.
  - Needs only python3 on the managed host (standard library).
author:
  - llmops.langfuse contributors (@llmops)
options:
  host:
    description: Address of the server.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port of the server.
    type: int
    default: 6379
  user:
    description: ACL user to authenticate as; without it a password is sent as C(AUTH password).
    type: str
  password:
    description: Password of O(user). No authentication when empty.
    type: str
  tls:
    description: Connect with TLS, verifying the server certificate against O(tls_ca_file).
    type: bool
    default: false
  tls_ca_file:
    description: CA certificate file that signed the server certificate (system CAs when unset).
    type: path
  tls_cert_file:
    description: Client certificate, for a server that authenticates clients by certificate.
    type: path
  tls_key_file:
    description: Private key of O(tls_cert_file).
    type: path
  tls_server_name:
    description: Name to verify the server certificate against (default O(host)).
    type: str
  timeout:
    description: Seconds to wait for the connection and for each reply.
    type: float
    default: 5.0
  command:
    description: The command and its arguments, e.g. V([PING]) or V([ACL, LOAD]).
    type: list
    elements: str
    required: true
  fail_on_error:
    description:
      - Fail when the server cannot be reached or answers with an error.
      - With V(false) the module succeeds and RV(status) tells what happened, so that a later
        task can explain the failure.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: partial
    details: In check mode only read-only commands (PING, INFO, ROLE, ACL WHOAMI, SENTINEL
      GET-MASTER-ADDR-BY-NAME, LLEN, ZCARD, ...) are sent; any other command is not sent and the
      module reports RV(status=skipped).
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The module never reports a change. The caller knows what its command changes and says so
    with C(changed_when).
"""

EXAMPLES = r"""
- name: Ask Redis for PONG as the admin user
  llmops.langfuse.redis_command:
    port: 6379
    user: admin
    password: "{{ redis_admin_password }}"
    command: [PING]
  register: pong
  no_log: true

- name: Load the ACL file, reporting errors instead of failing
  llmops.langfuse.redis_command:
    user: admin
    password: "{{ redis_admin_password }}"
    command: [ACL, LOAD]
    fail_on_error: false
  register: acl_load
  changed_when: acl_load.reply == 'OK'
  no_log: true
"""

RETURN = r"""
status:
  description:
    - V(ok) (a reply that is no error), V(error) (the server answered with an error, e.g. a
      wrong password), V(unreachable) (no connection, no reply or a failed TLS handshake) or
      V(skipped) (check mode and a command that could change something).
  type: str
  returned: always
reply:
  description: The reply (a string, an integer, a list or null); null unless RV(status=ok).
  type: raw
  returned: always
msg:
  description: The error text of the server or of the connection, empty when RV(status=ok).
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.langfuse.plugins.module_utils.redis_resp import (
    RedisConnection,
    RedisError,
    RedisUnreachable,
)

# commands (upper case, with their first argument for containers) that never change anything
READ_ONLY = {
    "PING", "INFO", "ROLE", "DBSIZE", "LLEN", "ZCARD", "SCARD", "HLEN", "EXISTS", "TYPE", "GET",
    "ACL WHOAMI", "ACL LIST", "ACL USERS", "CONFIG GET", "SENTINEL GET-MASTER-ADDR-BY-NAME",
    "SENTINEL MASTER", "SENTINEL MASTERS", "SENTINEL REPLICAS", "SENTINEL SENTINELS",
}


def is_read_only(command):
    words = [str(word).upper() for word in command[:2]]
    return words[0] in READ_ONLY or " ".join(words) in READ_ONLY


def run_command(params):
    """The module's work, without AnsibleModule (unit-tested)."""
    command = params["command"]
    conn = RedisConnection(
        params["host"], params["port"], user=params.get("user") or None, password=params.get("password") or None,
        timeout=params["timeout"], tls=params["tls"], ca_file=params.get("tls_ca_file"),
        cert_file=params.get("tls_cert_file"), key_file=params.get("tls_key_file"),
        server_name=params.get("tls_server_name"))
    try:
        with conn:
            reply = conn.call(*command)
    except RedisError as exc:
        return {"status": "error", "reply": None, "msg": str(exc)}
    except RedisUnreachable as exc:
        return {"status": "unreachable", "reply": None, "msg": str(exc)}
    return {"status": "ok", "reply": reply, "msg": ""}


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 6379},
            "user": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "tls": {"type": "bool", "default": False},
            "tls_ca_file": {"type": "path"},
            "tls_cert_file": {"type": "path"},
            "tls_key_file": {"type": "path"},
            "tls_server_name": {"type": "str"},
            "timeout": {"type": "float", "default": 5.0},
            "command": {"type": "list", "elements": "str", "required": True},
            "fail_on_error": {"type": "bool", "default": True},
        },
        required_together=[("tls_cert_file", "tls_key_file")],
        supports_check_mode=True,
    )
    if not module.params["command"]:
        module.fail_json(msg="command must not be empty", status="error", reply=None)
    if module.check_mode and not is_read_only(module.params["command"]):
        module.exit_json(changed=False, status="skipped", reply=None,
                         msg="check mode: %s was not sent" % module.params["command"][0])
    result = run_command(module.params)
    if result["status"] != "ok" and module.params["fail_on_error"]:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
