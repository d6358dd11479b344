"""Helpers shared by the testinfra suites of every scenario (molecule/*/tests)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
SCENARIO_DIR = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", "."))


@pytest.fixture(scope="session")
def hosts():
    """Every inventory host of the scenario, by name, as a testinfra host."""
    names = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")
    return {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY) for name in names}


def address(host) -> str:
    """The host's address on the scenario network: the source address of its default route
    (`hostname -I` would list docker0 first on a host that runs Docker)."""
    out = host.check_output("ip -4 -o route get 192.0.2.1").split()
    return out[out.index("src") + 1]


def get_json(host, url: str):
    """GET a URL from a test host (with its python3), the decoded JSON answer."""
    code = (
        "import json,sys,urllib.request\n"
        f"print(urllib.request.urlopen({url!r}, timeout=10).read().decode())\n"
    )
    return json.loads(host.check_output("python3 -c %s", code))


def prometheus_query(host, prom: str, expr: str) -> list:
    """The result of an instant query of the Prometheus at `prom`, asked from a test host."""
    return get_json(host, f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")["data"]["result"]


DASHBOARDS = Path(__file__).resolve().parents[1] / "roles" / "grafana" / "files" / "dashboards"


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the grafana role's dashboards."""
    return [t["expr"] for f in sorted(DASHBOARDS.glob("*.json"))
            for p in json.loads(f.read_text())["panels"] for t in p.get("targets", [])]


def failing_queries(host, prom: str, expressions: list[str]) -> list:
    """The expressions the Prometheus at `prom` does not answer with success, with its answer."""
    bad = []
    for expr in expressions:
        answer = get_json(host, f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")
        if answer.get("status") != "success":
            bad.append((expr, answer))
    return bad


def listen(host, port: int) -> None:
    """Start a throw-away TCP listener (python http.server) on a port of a host."""
    unit = f"llmops-probe-{port}"
    host.run(f"systemctl stop {unit}")
    host.check_output(f"systemd-run --unit {unit} --collect python3 -m http.server {port}")
    for _attempt in range(50):
        if host.run(f"ss -Htln 'sport = :{port}' | grep -q LISTEN").rc == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"listener on port {port} did not start")


def stop_listening(host, port: int) -> None:
    host.run(f"systemctl stop llmops-probe-{port}")


def can_connect(src, dst_addr: str, port: int, timeout: float = 2.0) -> bool:
    """True when src completes a TCP handshake with dst_addr:port within the timeout."""
    code = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({dst_addr!r}, {port}), timeout={timeout}).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    return src.run(f"python3 -c \"{code}\"").rc == 0


def run_playbook(playbook: str = "converge.yml", *args: str) -> subprocess.CompletedProcess:
    """Run a playbook of the scenario against the scenario's inventory; stdout holds stdout
    and stderr (ansible-core 2.19 prints task errors on stderr)."""
    cmd = ["ansible-playbook", "-i", INVENTORY, str(SCENARIO_DIR / playbook), *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1"))


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP of an ansible-playbook run: host -> counters."""
    result = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=\d+.*)$", line.strip())
        if match:
            result[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return result
