"""Development and CI entry point of llmops.langfuse (standard library only).

It prepares what the tests and the lab need on a fresh Debian machine, then runs them:

* a Python virtual environment with the pinned controller tools (requirements.txt), kept in a
  cache folder outside the checkout and keyed by the hash of requirements.txt, so clean clones
  (CI) reuse it;
* a Docker engine: docker.io and debootstrap are installed with apt when missing, dockerd is
  started only when ``docker info`` fails;
* the systemd test-host images (tests/harness/images.py), rebuilt only when their recipe changed;
* the locally built stand-in images (tests/standins), shipped to test hosts as archives.

Sub-commands (the Makefile calls them): ``test``, ``lab``, ``down``, ``bench``, ``molecule``, ``env``.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import images  # noqa: E402  (sibling module, path set above)
from util import CACHE, log, run  # noqa: E402

T_START = time.monotonic()  # the deadline of `test` counts from here (LLMOPS_TEST_DEADLINE)

ROOT = Path(__file__).resolve().parents[2]
DOCKERD_LOG = Path("/var/log/llmops-dockerd.log")


def as_root(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return cmd
    if shutil.which("sudo"):
        return ["sudo", "-n", *cmd]
    sys.exit(f"{cmd[0]} needs root and sudo is not available")


# --------------------------------------------------------------------------- apt
def missing_packages(packages: list[str]) -> list[str]:
    missing = []
    for pkg in packages:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
        if res.returncode != 0 or "install ok installed" not in res.stdout:
            missing.append(pkg)
    return missing


def ensure_packages(packages: list[str]) -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(as_root(["apt-get", "update", "-q"]), env=env)
    run(as_root(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]), env=env)


# --------------------------------------------------------------------------- venv
def venv_dir() -> Path:
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes())
    digest.update(sys.version.encode())
    return CACHE / f"venv-{digest.hexdigest()[:12]}"


def ensure_venv() -> Path:
    venv = venv_dir()
    stamp = venv / ".llmops-complete"
    if stamp.exists():
        stamp.touch()  # last use, for the cleanup below
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"creating the tools venv {venv}")
    if subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False).returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        ensure_packages(["python3-venv"])
        run([sys.executable, "-m", "venv", venv])
    pip = venv / "bin" / "pip"
    run([pip, "install", "-q", "--disable-pip-version-check", "-U", "pip"])
    run([pip, "install", "-q", "--disable-pip-version-check", "-r", ROOT / "requirements.txt"])
    stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    # keep the cache small: venvs of other requirement sets go once unused for a week (another
    # checkout, or a run still going, may use one now)
    week = time.time() - 7 * 86400
    for old in CACHE.glob("venv-*"):
        stamp_old = old / ".llmops-complete"
        last_use = (stamp_old if stamp_old.exists() else old).stat().st_mtime
        if old != venv and last_use < week:
            shutil.rmtree(old, ignore_errors=True)
    return venv


def tool_env(venv: Path, collections: Path | None = None) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env.setdefault("ANSIBLE_FORCE_COLOR", "0" if os.environ.get("CI") else "1")
    env["PY_COLORS"] = env["ANSIBLE_FORCE_COLOR"]
    env["ANSIBLE_NOCOWS"] = "1"
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
        env["LLMOPS_COLLECTIONS_PATH"] = str(collections)
    return env


def mitogen_env(venv: Path, default: str = "1") -> dict:
    """Mitogen's linear strategy for playbook runs: on for the scenarios (LLMOPS_MITOGEN=0 turns it
    off), off for the lab and the benchmark, which run as users do (LLMOPS_MITOGEN=1 turns it on).

    One persistent interpreter per host instead of a `docker exec` and a fresh Python per task:
    measured on this machine, 30 tasks on 4 hosts took 99 CPU-s and 51 s plain, 12 CPU-s and 8 s
    with it. Mitogen redirects the connection names it knows (`docker`, `ssh`, ...), so
    .config/molecule/config.yml names the connection `docker` (ansible-core routes that name to
    community.docker.docker when Mitogen is off). Users opt in the same way (README, Performance).
    """
    if os.environ.get("LLMOPS_MITOGEN", default) == "0":
        return {}
    found = sorted(venv.glob("lib/python*/site-packages/ansible_mitogen/plugins/strategy"))
    if not found:
        raise SystemExit(f"mitogen is pinned in requirements.txt but not installed in {venv}")
    return {"ANSIBLE_STRATEGY_PLUGINS": str(found[0]), "ANSIBLE_STRATEGY": "mitogen_linear"}


# --------------------------------------------------------------------------- docker
def docker_ok() -> bool:
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_docker() -> None:
    if shutil.which("docker") and docker_ok():
        return
    ensure_packages(["docker.io", "debootstrap"])
    if docker_ok():
        return
    if Path("/run/systemd/system").is_dir():
        subprocess.run(as_root(["systemctl", "start", "docker"]), check=False)
    if not docker_ok():
        log(f"starting dockerd (log: {DOCKERD_LOG})")
        logf = open(DOCKERD_LOG, "ab")  # noqa: SIM115  (kept open by the detached daemon)
        subprocess.Popen(as_root(["dockerd"]), stdout=logf, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    for _attempt in range(120):
        if docker_ok():
            return
        time.sleep(1)
    tail = DOCKERD_LOG.read_text(errors="replace")[-3000:] if DOCKERD_LOG.exists() else ""
    sys.exit(f"the Docker engine did not answer within 120 s\n{tail}")


# --------------------------------------------------------------------------- apt cache
APT_CACHE_PORT = 3142


def _machine_address() -> str:
    """This machine's address on its default route: every test host reaches it, whatever network
    it is on. (Not docker0's 172.17.0.1: an app host runs its own engine, whose docker0 has that
    address too, so the name would point back into the test host.)"""
    out = subprocess.run(["ip", "-4", "route", "get", "1.1.1.1"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, check=False).stdout.split()
    return out[out.index("src") + 1] if "src" in out else ""


def _port_answers(host: str, port: int) -> bool:
    import socket  # noqa: PLC0415

    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def ensure_apt_cache() -> dict:
    """Debian's apt-cacher-ng on this machine, bound to its default-route address, so that
    test hosts download each Debian package once across scenarios (real packages, real installs;
    the proxy only caches the downloads). Returns LLMOPS_APT_PROXY for the inventories
    (common_apt_proxy); LLMOPS_APT_PROXY=off disables it."""
    if os.environ.get("LLMOPS_APT_PROXY") == "off":
        return {"LLMOPS_APT_PROXY": ""}
    bridge = _machine_address()
    if not bridge:
        log("no default route: test hosts download from the Debian mirror directly")
        return {"LLMOPS_APT_PROXY": ""}
    if not _port_answers(bridge, APT_CACHE_PORT):
        ensure_packages(["apt-cacher-ng"])
        # its own configuration and cache under the cache folder: a plain caching proxy for the
        # hosts the test hosts name (deb.debian.org). The package's own configuration remaps
        # Debian requests to ftp.debian.org, which is not reachable from every machine.
        home = CACHE / "apt-cacher-ng"
        for sub in ("conf", "cache", "log", "run"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / "conf" / "acng.conf").write_text(
            f"CacheDir: {home / 'cache'}\nLogDir: {home / 'log'}\nSupportDir: /usr/lib/apt-cacher-ng\n"
            f"Port: {APT_CACHE_PORT}\nBindAddress: {bridge}\nExThreshold: 4\nReportPage: acng-report.html\n")
        pidfile = home / "run" / "pid"
        if pidfile.exists():  # an earlier daemon, bound to an address that is not this one
            subprocess.run(as_root(["kill", pidfile.read_text().strip()]), check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        log(f"starting apt-cacher-ng on {bridge}:{APT_CACHE_PORT} (cache {home / 'cache'})")
        run(as_root(["/usr/sbin/apt-cacher-ng", "-c", home / "conf", f"pidfile={home / 'run' / 'pid'}",
                     f"SocketPath={home / 'run' / 'socket'}", "foreground=0"]), check=False)
        for _attempt in range(30):
            if _port_answers(bridge, APT_CACHE_PORT):
                break
            time.sleep(0.5)
        else:
            log("apt-cacher-ng did not answer: test hosts download from the Debian mirror directly")
            return {"LLMOPS_APT_PROXY": ""}
    return {"LLMOPS_APT_PROXY": f"http://{bridge}:{APT_CACHE_PORT}"}


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_WANTED = 1024


def ensure_inotify() -> None:
    """systemd in every test host takes inotify instances from the same (root) budget, 128 by
    default: with the lab and two scenarios up, a new test host's systemd exits at once (status
    255, no log). The budget of this machine (the one running the tests, never a test host's
    kernel setting) is raised once, with a message."""
    try:
        current = int(INOTIFY_INSTANCES.read_text())
    except (OSError, ValueError):
        return
    if current >= INOTIFY_WANTED:
        return
    log(f"raising fs.inotify.max_user_instances from {current} to {INOTIFY_WANTED} (one systemd per test host)")
    run(as_root(["sysctl", "-q", "-w", f"fs.inotify.max_user_instances={INOTIFY_WANTED}"]), check=False)


# The real BullMQ client of the queue tests (tests/helpers/bullmq.py), from npm: the versions
# Langfuse v4.16.0 depends on (worker/package.json: bullmq ^5.76.3, ioredis ^5.10.1), pinned.
BULLMQ_PACKAGES = {"bullmq": "5.76.3", "ioredis": "5.10.1"}


def node_packages() -> list[str]:
    """Debian's nodejs and npm, unless the machine has node and npm already (from any source:
    a NodeSource nodejs carries its own npm, and Debian's npm would conflict with it)."""
    return [pkg for pkg, tool in (("nodejs", "node"), ("npm", "npm")) if shutil.which(tool) is None]


def ensure_bullmq() -> dict:
    """npm install of BULLMQ_PACKAGES into the cache, once per version set."""
    ensure_packages(node_packages())
    dest = CACHE / ("npm-" + "-".join(f"{name}-{version}" for name, version in BULLMQ_PACKAGES.items()))
    stamp = dest / ".llmops-complete"
    if not stamp.exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        log(f"npm install {' '.join(f'{n}@{v}' for n, v in BULLMQ_PACKAGES.items())} into {dest}")
        run(["npm", "install", "--no-audit", "--no-fund", "--omit=dev", "--prefix", dest,
             *[f"{name}@{version}" for name, version in BULLMQ_PACKAGES.items()]])
        stamp.touch()
    return {"LLMOPS_BULLMQ_NODE_PATH": str(dest / "node_modules")}


def ensure_images(test_clients: bool = True) -> dict:
    """Test-host images, then the stand-in images (tests/harness/standins.py, when present), and
    (test_clients) the BullMQ client of the queue tests, which the lab does not need.

    Returns environment variables the scenarios need (e.g. where the image archives are).
    """
    ensure_docker()
    ensure_inotify()
    ensure_packages(["debootstrap"])
    images.ensure_all(log=log, run=run)
    extra = ensure_apt_cache()
    if test_clients:
        extra.update(ensure_bullmq())
    if (Path(__file__).parent / "standins.py").exists():
        import standins  # noqa: PLC0415  (optional module)
        extra.update(standins.ensure_all(log=log, run=run, cache=CACHE))
    return extra


# --------------------------------------------------------------------------- collection
def build_and_install(venv: Path, dest: Path, keep_tarball_in: Path | None = None) -> Path:
    """Build the collection tarball and install it into dest (a collections path).

    With keep_tarball_in, the tarball is built there and kept (and returned instead of dest)."""
    env = tool_env(venv)
    with tempfile.TemporaryDirectory(prefix="llmops-build-") as tmp:
        out = keep_tarball_in or Path(tmp)
        run(["ansible-galaxy", "collection", "build", ROOT, "--output-path", out, "--force"], env=env)
        tarball = next(Path(out).glob("llmops-langfuse-*.tar.gz"))
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        run(["ansible-galaxy", "collection", "install", tarball, "-p", dest, "--force", "--no-deps"],
            env=env)
    return tarball if keep_tarball_in else dest


# --------------------------------------------------------------------------- ecosystem gates
def venv_python_version(venv: Path) -> str:
    out = subprocess.run([venv / "bin" / "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.strip()


def ensure_ansible_test_get_pip(venv: Path) -> None:
    """ansible-test bootstraps pip in its sanity venvs with get-pip.py from
    ci-files.testing.ansible.com, unreachable here; it uses a copy in its cache when there is
    one. Put tests/harness/ansible_test_get_pip.py there (never over a real get-pip.py)."""
    code = ("import types\n"
            "from ansible_test._internal.python_requirements import get_venv_packages\n"
            f"print(get_venv_packages(types.SimpleNamespace(version={venv_python_version(venv)!r}))['pip'])\n")
    pip_version = subprocess.run([venv / "bin" / "python", "-c", code], stdout=subprocess.PIPE, text=True,
                                 check=True).stdout.strip()
    source = Path(__file__).parent / "ansible_test_get_pip.py"
    target = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    if target.exists() and "ansible-test get-pip stand-in" not in target.read_text(errors="replace"):
        return  # a real get-pip.py
    if not target.exists() or target.read_bytes() != source.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        log(f"ansible-test's pip bootstrap: {target} (from {source.relative_to(ROOT)})")


# what a copy of the checkout for ansible-test leaves out when git cannot list the files
_COPY_IGNORE = shutil.ignore_patterns(".git", ".ansible", ".cache", ".venv", ".pytest_cache", ".lab", "build",
                                      "__pycache__", "*.pyc", "*.tar.gz", "output", "*-tls", "vault.yml")


def checkout_copy(dest: Path) -> Path:
    """Copy the checkout to dest/ansible_collections/llmops/langfuse (the layout ansible-test
    needs; the checkout itself is not moved): the files git tracks or would track."""
    target = dest / "ansible_collections" / "llmops" / "langfuse"
    listed = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    if listed.returncode != 0:
        shutil.copytree(ROOT, target, ignore=_COPY_IGNORE, symlinks=True)
        return target
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree, not yet in the index
        dst = target / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return target


def galaxy_importer_step(steps: "Steps", tarball: Path, env: dict) -> None:
    """galaxy-importer (what Galaxy runs on an upload) on the built tarball, with the settings of
    tests/harness/galaxy-importer.cfg. It exits 0 after some errors (e.g. a plugin without
    documentation), so any ERROR line fails the step as well."""
    env = dict(env, GALAXY_IMPORTER_CONFIG=str(Path(__file__).parent / "galaxy-importer.cfg"))
    name = "galaxy-importer on the built tarball"
    log(f"step: {name}")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llmops-importer-") as cwd:  # it writes importer_result.json
        proc = subprocess.run([env["VIRTUAL_ENV"] + "/bin/python", "-m", "galaxy_importer.main", str(tarball)],
                              env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False)
    sys.stdout.write(proc.stdout)
    errors = [line for line in proc.stdout.splitlines() if line.startswith(("ERROR:", "CRITICAL:"))]
    ok = proc.returncode == 0 and not errors and "Importer processing completed successfully" in proc.stdout
    steps.record(name, ok, time.monotonic() - start)
    if not ok:
        log(f"FAILED: {name} (exit {proc.returncode}, {len(errors)} error lines)")


def filter_docs_steps(steps: "Steps", env: dict) -> None:
    """`ansible-doc -t filter` of every filter of the installed collection (one step each)."""
    listed = subprocess.run(["ansible-doc", "-t", "filter", "-l", "llmops.langfuse", "--json"], env=env,
                            stdout=subprocess.PIPE, text=True, check=False)
    names = sorted(json.loads(listed.stdout)) if listed.returncode == 0 and listed.stdout.strip() else []
    if not names:
        steps.record("ansible-doc -t filter -l llmops.langfuse", False, 0.0)
        return
    for name in names:
        steps.step(f"ansible-doc -t filter {name}", ["ansible-doc", "-t", "filter", name], env,
                   stdout=subprocess.DEVNULL)


def scenarios() -> list[str]:
    names = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
    # the full-stack scenario is the slowest and depends on every role: run it last
    return sorted(names, key=lambda n: (n == "default", n))


# --------------------------------------------------------------------------- commands
class Steps:
    """Runs named steps, keeps going after a failure, and reports every result at the end."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool, float]] = []
        # while the gates run beside the scenarios, each step's output is printed whole when it
        # ends (under this lock, as the scenarios' logs are), so that the two never interleave
        self.capture = False
        self.lock = threading.Lock()
        # what failed scenarios said last, printed after the summary: CI keeps only the tail of
        # a run's output, and a scenario's whole log scrolls far above it
        self.excerpts: dict[str, list[str]] = {}

    def step(self, name: str, cmd: list, env: dict, ok_codes: tuple = (0,), cwd: Path = ROOT, **kw) -> bool:
        start = time.monotonic()
        if self.capture:
            if "stdout" not in kw:
                kw.update(stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            proc = subprocess.run([str(c) for c in cmd], env=env, check=False, cwd=cwd, **kw)
            with self.lock:
                log(f"step: {name}")
                log("$ " + " ".join(str(c) for c in cmd))
                sys.stdout.write(proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes)
                                 else proc.stdout or "")
                sys.stdout.flush()
        else:
            log(f"step: {name}")
            proc = run(cmd, env=env, check=False, cwd=cwd, **kw)
        code = proc.returncode
        ok = code in ok_codes
        self.results.append((name, ok, time.monotonic() - start))
        if not ok:
            log(f"FAILED: {name} (exit {code})")
        return ok

    def record(self, name: str, ok: bool, seconds: float) -> None:
        self.results.append((name, ok, seconds))

    def report(self) -> int:
        print("\n==> summary", flush=True)
        for name, ok, secs in self.results:
            print(f"    {'PASS' if ok else 'FAIL'}  {secs:7.1f}s  {name}", flush=True)
        failed = [n for n, ok, _secs in self.results if not ok]
        for name, lines in self.excerpts.items():
            print(f"==> why {name} failed (its last error lines; its whole log is above):", flush=True)
            for line in lines:
                print(f"    {line}", flush=True)
        print(f"==> {len(self.results) - len(failed)} passed, {len(failed)} failed", flush=True)
        return 1 if failed else 0


FAILURE_MARKS = re.compile(r"fatal: |failed: |FAILED!|UNREACHABLE!|CRITICAL|ERROR|Traceback|Error: |^E   |"
                           r"^FAILED |failed=[1-9]|unreachable=[1-9]")
FAILED_RESULT = re.compile(r"^(fatal|failed): \[")
RESULT_DETAIL = re.compile(r"^\s+(msg|stderr): ")


def failure_excerpt(text: str, count: int = 20, width: int = 240) -> list[str]:
    """The last `count` lines of a molecule log that say what failed (Ansible's fatal, failed and
    unreachable results with the msg and stderr lines of a failed result, molecule's CRITICAL
    lines, pytest's E lines and FAILED summary), each cut to `width` characters, then the log's
    last line."""
    lines = text.splitlines()
    marked, failed_at = [], -100
    for i, line in enumerate(lines):
        if FAILED_RESULT.match(line):
            failed_at = i
        if FAILURE_MARKS.search(line) or (RESULT_DETAIL.match(line) and i - failed_at <= 40):
            marked.append(line)
    tail = [lines[-1]] if lines and (not marked or marked[-1] != lines[-1]) else []
    return [line.strip()[:width] for line in marked[-count:] + tail]


def run_scenarios(steps: Steps, names: list[str], env: dict, jobs: int, keep: bool) -> None:
    """molecule test of each scenario, `jobs` at a time. Each scenario's output goes to its own
    log, printed whole when the scenario ends, so parallel runs stay readable."""
    logdir = Path(tempfile.mkdtemp(prefix="llmops-molecule-logs-"))
    extra = ["--destroy", "never"] if keep else []
    running: dict[str, subprocess.Popen] = {}
    timed_out: set[str] = set()
    t0 = time.monotonic()

    def one(name: str) -> tuple[str, int, float, Path]:
        logfile = logdir / f"{name}.log"
        start = time.monotonic()
        if start - T_START > deadline:
            timed_out.add(name)
            logfile.write_text("not started: the harness deadline (LLMOPS_TEST_DEADLINE) had passed\n")
            return name, 124, 0.0, logfile
        with steps.lock:
            log(f"start: molecule test -s {name} (+{start - t0:.0f}s)")
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(["molecule", "test", "-s", name, *extra], env=env, cwd=ROOT,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            running[name] = proc
            code = proc.wait()
            running.pop(name, None)
        return name, code, time.monotonic() - start, logfile

    def watchdog() -> None:
        """Past the deadline, stop what still runs (its process group) so that the summary,
        with each scenario's time, is printed before an outer time limit cuts the run."""
        while not done.wait(10):
            if time.monotonic() - T_START > deadline:
                for name, proc in list(running.items()):
                    timed_out.add(name)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)

    deadline = float(os.environ.get("LLMOPS_TEST_DEADLINE", "5360"))
    done = threading.Event()
    threading.Thread(target=watchdog, name="deadline", daemon=True).start()

    if jobs > 1:  # longest first (measured), so the short ones fill the gaps at the end
        order = ["default", "backup", "langfuse", "nginx", "redis_sentinel", "postgresql", "redis", "monitoring", "docker"]
        names = sorted(names, key=lambda n: order.index(n) if n in order else len(order))
    log(f"step: molecule test of {len(names)} scenarios, {jobs} at a time: {' '.join(names)}")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, n) for n in names]
        for fut in as_completed(futures):
            name, code, secs, logfile = fut.result()
            note = " (stopped at the harness deadline, LLMOPS_TEST_DEADLINE)" if name in timed_out else ""
            with steps.lock:
                print(f"\n==> molecule test -s {name}: exit {code} after {secs:.0f}s{note}; its output:", flush=True)
                sys.stdout.write(logfile.read_text(errors="replace"))
                sys.stdout.flush()
                log(f"end: molecule test -s {name}: exit {code} after {secs:.0f}s{note}")
            steps.record(f"molecule test -s {name}{note}", code == 0, secs)
            if code != 0:
                steps.excerpts[f"molecule test -s {name}"] = failure_excerpt(logfile.read_text(errors="replace"))
    done.set()
    shutil.rmtree(logdir, ignore_errors=True)


def start_images() -> Future:
    """The Docker engine, the test-host and stand-in images and the apt cache, built in a thread
    while the venv is made and the gates run (they need neither; the scenarios need both). Every
    apt package either side needs is installed first, in one apt run, so that the two never
    wait for each other's dpkg lock."""
    ensure_packages(["python3-venv", "docker.io", "debootstrap", "apt-cacher-ng", *node_packages()])
    pool = ThreadPoolExecutor(max_workers=1)
    atexit.register(pool.shutdown, wait=False)

    def build() -> tuple[dict | None, float, str]:
        start = time.monotonic()
        try:
            return ensure_images(), time.monotonic() - start, ""
        except (OSError, RuntimeError, subprocess.CalledProcessError, SystemExit) as exc:
            return None, time.monotonic() - start, str(exc)

    return pool.submit(build)


def cmd_test(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    steps = Steps()
    images_future = None if args.no_scenarios else start_images()
    start = time.monotonic()
    venv = ensure_venv()
    steps.record("tools venv", True, time.monotonic() - start)
    env = tool_env(venv)
    selected = args.scenario or scenarios()

    # a private collections path per run: several runs (developers, CI) may overlap
    collections = Path(tempfile.mkdtemp(prefix="llmops-collections-"))
    atexit.register(shutil.rmtree, collections, ignore_errors=True)
    tarball_dir = Path(tempfile.mkdtemp(prefix="llmops-tarball-"))
    atexit.register(shutil.rmtree, tarball_dir, ignore_errors=True)
    start = time.monotonic()
    try:
        tarball = build_and_install(venv, collections, keep_tarball_in=tarball_dir)
        steps.record("collection build + install", True, time.monotonic() - start)
    except subprocess.CalledProcessError:
        steps.record("collection build + install", False, time.monotonic() - start)
        return steps.report()
    cenv = tool_env(venv, collections)
    installed = collections / "ansible_collections" / "llmops" / "langfuse"

    def gates() -> None:
        """The gates: lint, unit tests, docs, ansible-test sanity, Galaxy importer, syntax checks."""
        steps.step("yamllint", ["yamllint", "--strict", "."], env)
        steps.step("ansible-lint (production profile)", ["ansible-lint", "--profile", "production"], env)
        # exit code 5 = no tests collected: the unit suite is allowed to be empty
        steps.step("pytest tests/unit", [venv / "bin" / "python", "-m", "pytest", "-q", "tests/unit"], env,
                   ok_codes=(0, 5))
        # the docs site's linter: plugin and role docs schemas, markup, RST generation
        steps.step("antsibull-docs lint-collection-docs --plugin-docs",
                   ["antsibull-docs", "lint-collection-docs", "--plugin-docs", "."], env)
        # ansible-test needs the collection at ansible_collections/llmops/langfuse: a copy
        sanity_root = Path(tempfile.mkdtemp(prefix="llmops-sanity-"))
        atexit.register(shutil.rmtree, sanity_root, ignore_errors=True)
        try:
            ensure_ansible_test_get_pip(venv)
            sanity_checkout = checkout_copy(sanity_root)
        except (OSError, subprocess.CalledProcessError) as exc:
            log(f"FAILED: preparing ansible-test sanity: {exc}")
            steps.record("ansible-test sanity", False, 0.0)
        else:
            steps.step("ansible-test sanity", ["ansible-test", "sanity", "--python", venv_python_version(venv),
                                               "--venv", "--color", "no"], env, cwd=sanity_checkout)

        galaxy_importer_step(steps, tarball, env)
        filter_docs_steps(steps, cenv)
        for playbook in sorted((installed / "playbooks").glob("*.yml")):
            steps.step(f"syntax-check llmops.langfuse.{playbook.stem}",
                       ["ansible-playbook", "--syntax-check", "-i", "localhost,",
                        f"llmops.langfuse.{playbook.stem}"], cenv)

    if args.scenario:
        gates_thread = None
    elif args.no_scenarios:
        gates()
        gates_thread = None
    else:  # lint, unit tests, sanity and docs beside the scenarios (they share nothing)
        steps.capture = True
        gates_thread = threading.Thread(target=gates, name="gates")
        gates_thread.start()
    if args.no_scenarios:
        code = steps.report()
        log(f"total {time.monotonic() - t0:.0f}s")
        return code

    start = time.monotonic()
    extra, secs, error = images_future.result()
    waited = time.monotonic() - start
    name = f"docker engine + test-host and stand-in images (built beside the gates; waited {waited:.0f}s)"
    steps.record(name, extra is not None, secs)
    if extra is None:
        log(f"FAILED: docker engine + test-host and stand-in images: {error}")
        if gates_thread is not None:
            gates_thread.join()
        return steps.report()
    cenv.update(extra)
    # Mitogen for the scenarios only (the gates thread reads cenv too)
    run_scenarios(steps, selected, dict(cenv, **mitogen_env(venv)), jobs=args.jobs, keep=args.keep)
    if gates_thread is not None:
        gates_thread.join()
    code = steps.report()
    log(f"total {time.monotonic() - t0:.0f}s")
    return code


def cmd_molecule(args: argparse.Namespace) -> int:
    """Developer helper: rebuild/install the collection and run one molecule command."""
    venv = ensure_venv()
    collections = build_and_install(venv, CACHE / f"collections-dev-{args.scenario}")
    env = tool_env(venv, collections)
    env.update(ensure_images())
    env.update(mitogen_env(venv))
    cmd = ["molecule", args.action, "-s", args.scenario, *args.rest]
    return run(cmd, env=env, check=False, cwd=ROOT).returncode


def cmd_env(_args: argparse.Namespace) -> int:
    venv = ensure_venv()
    extra = ensure_images()
    print(f"export PATH={venv / 'bin'}:$PATH")
    for key, value in extra.items():
        print(f"export {key}={value}")
    return 0


def link_checkout() -> None:
    """Make llmops.langfuse resolve to this checkout (ansible.cfg's first collections path)."""
    link = ROOT / ".ansible" / "collections" / "ansible_collections" / "llmops" / "langfuse"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == ROOT:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(ROOT, target_is_directory=True)


def lab_env() -> dict:
    venv = ensure_venv()
    extra = ensure_images(test_clients=False)
    link_checkout()
    env = tool_env(venv)
    env.update(extra)
    env.update(mitogen_env(venv, default="0"))
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    return env


def lab_playbook(env: dict, playbook: str) -> None:
    run(["ansible-playbook", "-i", "inventories/lab", playbook], env=env, cwd=ROOT)


def lab_up(env: dict) -> None:
    """The lab's hosts, then its secret set (once, never overwritten:
    inventories/lab/group_vars/all/vault.yml)."""
    lab_playbook(env, "tests/lab/up.yml")
    lab_playbook(env, "playbooks/secrets.yml")


def cmd_lab(_args: argparse.Namespace) -> int:
    env = lab_env()
    start = time.monotonic()
    lab_up(env)
    created = time.monotonic()
    lab_playbook(env, "playbooks/site.yml")
    done = time.monotonic()
    lab_playbook(env, "tests/lab/summary.yml")
    log(f"lab hosts ready in {created - start:.0f}s, site.yml converged in {done - created:.0f}s")
    return 0


def cmd_down(_args: argparse.Namespace) -> int:
    lab_playbook(lab_env(), "tests/lab/down.yml")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import bench  # noqa: PLC0415  (sibling module, only needed here)

    env = lab_env()
    if args.floor_only:
        return bench.floor_only(env, run)
    return bench.bench(env, run, lambda: lab_up(env), lambda: lab_playbook(env, "tests/lab/down.yml"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_test = sub.add_parser("test", help="run every test (lint, unit, build, syntax, molecule)")
    p_test.add_argument("--scenario", action="append",
                        help="only these molecule scenarios (skips lint/unit/syntax; for development)")
    p_test.add_argument("--keep", action="store_true", help="do not destroy the test hosts at the end")
    p_test.add_argument("--no-scenarios", action="store_true",
                        help="only the steps without test hosts (lint, unit, sanity, docs, build, importer, syntax)")
    p_test.add_argument("--jobs", type=int, default=int(os.environ.get("LLMOPS_TEST_JOBS", "2")),
                        help="molecule scenarios run at the same time (default 2, or $LLMOPS_TEST_JOBS)")
    p_test.set_defaults(func=cmd_test)
    p_mol = sub.add_parser("molecule", help="run one molecule action on one scenario (development)")
    p_mol.add_argument("action")
    p_mol.add_argument("scenario")
    p_mol.add_argument("rest", nargs=argparse.REMAINDER)
    p_mol.set_defaults(func=cmd_molecule)
    sub.add_parser("lab", help="create the lab hosts and deploy site.yml into them").set_defaults(func=cmd_lab)
    sub.add_parser("down", help="remove the lab hosts, network and volumes").set_defaults(func=cmd_down)
    p_bench = sub.add_parser("bench", help="time site.yml on a fresh lab against the apt floor")
    p_bench.add_argument("--floor-only", action="store_true", help="only the apt floor of the converged lab")
    p_bench.set_defaults(func=cmd_bench)
    sub.add_parser("env", help="prepare venv + images and print the PATH to use").set_defaults(func=cmd_env)
    args = parser.parse_args()
    try:
        return args.func(args)
    except subprocess.CalledProcessError as exc:
        cmd = " ".join(str(c) for c in exc.cmd)
        log(f"FAILED: {cmd} (exit {exc.returncode}); its output is above")
        return exc.returncode or 1
    except RuntimeError as exc:
        log(f"FAILED: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
