"""Secret audit of a converged test inventory (used by molecule verify suites).

It looks for every secret of the inventory, and for its percent-encoded forms, in
* the text of a playbook run (run it with -vvv --diff),
* every world-readable regular file under /etc, /opt, /srv, /var/log and /home of every host,
* the command lines of every process seen on every host while a playbook ran (a sampler inside
  each host reads /proc/*/cmdline every 0.1 s; it receives no secret itself).

A finding names the secret by its variable and says where it was found: never the value. The
values only travel to a host on stdin (the file scan), never in a command line.
"""
from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

SECRET_NAME = re.compile(r"(password|secret|salt|encryption_key|passphrase|token|private_key|access_key)", re.I)
NOT_SECRET = re.compile(r"(public_key|_user$|_file$|_path$|_dir$|_src$|_enabled$|_length$)", re.I)
MIN_LENGTH = 8
FILE_ROOTS = ("/etc", "/opt", "/srv", "/var/log", "/home")


@dataclass(frozen=True)
class Finding:
    name: str
    where: str

    def __str__(self) -> str:
        return f"{self.name} found in {self.where}"


def forms(value: str) -> set[str]:
    """The value and the encodings under which it could appear in a URL, a DSN or a log."""
    return {f for f in (value, quote(value, safe=""), quote(value, safe="/"), quote_plus(value)) if f}


def secrets_from_inventory(hostvars: dict) -> dict[str, str]:
    """Variable name -> value of every secret-looking variable with a literal value (templates,
    such as ``{{ vault_x }}``, are skipped: their target is a variable of its own)."""
    found: dict[str, str] = {}
    for variables in hostvars.values():
        for name, value in variables.items():
            if not isinstance(value, str) or "{{" in value or len(value) < MIN_LENGTH:
                continue
            if SECRET_NAME.search(name) and not NOT_SECRET.search(name):
                found.setdefault(name, value)
    return found


class SecretAudit:
    def __init__(self, secrets: dict[str, str]):
        short = [n for n, v in secrets.items() if len(v) < MIN_LENGTH]
        if short:
            raise ValueError(f"secrets too short to search for without false hits: {short}")
        self.secrets = dict(secrets)
        self._forms = {name: forms(value) for name, value in self.secrets.items()}

    # ---------------------------------------------------------------- text
    def scan_text(self, text: str, where: str) -> list[Finding]:
        findings = []
        for name, variants in self._forms.items():
            for line_no, line in enumerate(text.splitlines(), 1):
                if any(v in line for v in variants):
                    findings.append(Finding(name, f"{where}, line {line_no}"))
                    break
        return findings

    # ---------------------------------------------------------------- files
    # runs inside a host: reads {name: [forms]} from stdin, prints "name<TAB>path" per hit
    _FILE_SCAN = r"""
import json, os, stat, sys
wanted = {name: [v.encode() for v in variants] for name, variants in json.load(sys.stdin).items()}
for top in sys.argv[1:]:
    for root, dirs, files in os.walk(top):
        for f in files:
            path = os.path.join(root, f)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IROTH or st.st_size > 20 * 2**20:
                    continue
                with open(path, 'rb') as fh:
                    data = fh.read()
            except OSError:
                continue
            for name, variants in wanted.items():
                if any(v in data for v in variants):
                    print(name + '\t' + path)
"""

    def scan_files(self, container: str, roots: tuple[str, ...] = FILE_ROOTS,
                   exec_prefix: list[str] | None = None) -> list[Finding]:
        """exec_prefix runs the scanner on the host (default: docker exec -i CONTAINER)."""
        payload = json.dumps({name: sorted(v) for name, v in self._forms.items()})
        prefix = ["docker", "exec", "-i", container] if exec_prefix is None else exec_prefix
        res = subprocess.run([*prefix, "python3", "-c", self._FILE_SCAN, *roots],
                             input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"file scan on {container} failed: {res.stderr[-500:]}")
        findings = []
        for line in res.stdout.splitlines():
            name, path = line.split("\t", 1)
            findings.append(Finding(name, f"world-readable file {container}:{path}"))
        return findings

    # ---------------------------------------------------------------- processes
    def scan_command_lines(self, command_lines: dict[str, set[str]]) -> list[Finding]:
        findings = []
        for container, lines in command_lines.items():
            for name, variants in self._forms.items():
                for line in lines:
                    if any(v in line for v in variants):
                        findings.append(Finding(name, f"a process command line on {container}"))
                        break
        return findings


class ProcessSampler:
    """Collects the distinct command lines of every process of some hosts while it runs:
    ``with ProcessSampler(containers) as sampler: ...; sampler.command_lines``."""

    # Every 0.1 s: the command line of each process first seen in the last second (long enough
    # for a fork to exec its program; older processes keep the command line they were seen
    # with). Reading only the young ones keeps the sampler cheap on busy hosts.
    _SAMPLER = r"""
import os, select, sys
seen, born, scan = set(), {}, 0
while True:
    scan += 1
    pids = {p for p in os.listdir('/proc') if p.isdigit()}
    for pid in list(born):
        if pid not in pids:
            del born[pid]  # gone: a reused pid is a new process
    for pid in pids:
        if scan - born.setdefault(pid, scan) > 10:
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as fh:
                raw = fh.read()
        except OSError:
            continue
        if raw:
            seen.add(raw.replace(b'\0', b' ').decode('utf-8', 'replace').strip())
    if select.select([sys.stdin], [], [], 0.1)[0]:
        break
sys.stdout.write('\n'.join(sorted(seen)))
"""

    def __init__(self, containers: list[str], exec_prefix=None):
        """exec_prefix(container) -> the command prefix that runs a program on it (default:
        docker exec -i CONTAINER)."""
        self.containers = containers
        self._prefix = exec_prefix or (lambda c: ["docker", "exec", "-i", c])
        self.command_lines: dict[str, set[str]] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "ProcessSampler":
        for container in self.containers:
            self._procs[container] = subprocess.Popen(
                [*self._prefix(container), "python3", "-c", self._SAMPLER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *exc) -> None:
        threads = []
        for container, proc in self._procs.items():
            def finish(c=container, p=proc):
                out, _err = p.communicate(input="stop\n", timeout=60)
                self.command_lines[c] = set(out.splitlines())
            thread = threading.Thread(target=finish)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
