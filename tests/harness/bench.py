"""`make bench`: how long site.yml takes on a fresh lab, against the apt floor of the same hosts.

A benchmark, not a test: it prints figures and fails only when a run fails. Steps:

1. a fresh lab (``make down``, then the lab hosts and their secret set), an empty fact cache;
2. the first converge of playbooks/site.yml;
3. a no-change re-run (its recap must say changed=0);
4. a re-run with one setting changed (a PostgreSQL parameter: a reload on the database hosts);
5. the apt floor: for every lab host, a fresh container of the same image installs exactly the
   packages the converged host has beyond its image (``apt-get update`` + ``apt-get install
   --no-install-recommends``), all hosts at the same time, through the same apt proxy as the lab.

Figures are printed as ``bench: key=value`` lines (a stable format, so that two commits can be
compared with diff), followed by the ratios and the 10 slowest tasks of each run
(ansible.posix.profile_tasks).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
FLOOR_NETWORK = "llmops-bench"
CHANGED_SETTING = {"postgresql_parameters": {"work_mem": "6MB"}}

Run = Callable[..., subprocess.CompletedProcess]


def _lab_hosts(env: dict) -> dict[str, dict]:
    """Inventory name -> {'container': ..., 'image': ...} of the lab (ansible-inventory)."""
    out = subprocess.run(["ansible-inventory", "-i", str(LAB), "--list"], stdout=subprocess.PIPE,
                         text=True, check=True, cwd=ROOT, env=env).stdout
    hostvars = json.loads(out)["_meta"]["hostvars"]
    return {name: {"container": hv["ansible_host"], "image": hv["lab_image"]} for name, hv in hostvars.items()}


def _recap(output: str) -> dict[str, dict[str, int]]:
    result = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=\d+.*)$", line.strip())
        if match:
            result[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return result


def _slowest(output: str, count: int = 10) -> list[str]:
    """The task lines of profile_tasks' last summary, slowest first. profile_tasks pads each line
    to the terminal width with dashes before the time (``name ---- 12.34s``); a long name leaves
    fewer of them, down to none (``long name 123.45s``), so only the block after the summary's
    rule of ``=`` is read, not every line that happens to end in a time."""
    lines = output.splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"=+\s*", line)]
    timed = []
    for line in lines[rules[-1] + 1:] if rules else []:
        match = re.fullmatch(r"(.*?) -*\s*([0-9]+\.[0-9]{2})s\s*", line.strip())
        if match:
            timed.append((float(match.group(2)), match.group(1)))
    return [f"{secs:7.2f}s  {name}" for secs, name in sorted(timed, reverse=True)[:count]]


def _playbook(env: dict, run_name: str, playbook: str, *args: str) -> tuple[float, str]:
    cmd = ["ansible-playbook", "-i", str(LAB), playbook, *args]
    print(f"==> bench: {run_name}: {' '.join(cmd)}", flush=True)
    log = ROOT / ".lab" / f"bench-{run_name}.log"
    log.parent.mkdir(exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as out:  # written as it goes: tail -f it
        code = subprocess.run(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    secs = time.monotonic() - start
    output = log.read_text(errors="replace")
    if code != 0:
        sys.stdout.write(output[-6000:])
        raise SystemExit(f"bench: {run_name} failed (exit {code}); whole output in {log}")
    return secs, output


def _installed(container: str) -> set[str]:
    out = subprocess.run(["docker", "exec", container, "dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\n"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("ii ")}


def _apt_proxy(container: str) -> str:
    """The apt proxy a converged lab host uses (common_apt_proxy), or ''."""
    res = subprocess.run(["docker", "exec", container, "cat", "/etc/apt/apt.conf.d/60llmops"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    match = re.search(r'Acquire::http::Proxy "([^"]+)"', res.stdout)
    return match.group(1) if match else ""


def _floor(env: dict, hosts: dict[str, dict], run: Run) -> tuple[float, dict[str, float], dict[str, int]]:
    """Create one fresh container per lab host, then install the converged package sets in all of
    them at once. Returns the wall time, each host's time and each host's package count."""
    inventory = ROOT / ".lab" / "bench-floor-hosts.json"
    spec = [{"name": f"llmops-bench-{name}", "hostname": f"bench-{name}", "image": h["image"],
             "networks": [{"name": FLOOR_NETWORK}]} for name, h in hosts.items()]
    inventory.write_text(json.dumps({"llmops_test_hosts": spec}))
    playbook = ROOT / "tests" / "lab" / "bench_floor.yml"
    # -i lab: the implicit localhost of an inventory runs modules with the controller's Python
    run(["ansible-playbook", "-i", str(LAB), str(playbook), "-e", f"@{inventory}", "-e", "bench_state=started"],
        env=env, cwd=ROOT)
    try:
        packages, proxies = {}, {}
        for name, h in hosts.items():
            fresh = _installed(f"llmops-bench-{name}")
            packages[name] = sorted(_installed(h["container"]) - fresh)
            proxies[name] = _apt_proxy(h["container"])

        def install(name: str) -> tuple[str, float]:
            container = f"llmops-bench-{name}"
            if proxies[name]:
                subprocess.run(["docker", "exec", container, "sh", "-c",
                                f"echo 'Acquire::http::Proxy \"{proxies[name]}\";' > /etc/apt/apt.conf.d/01proxy"],
                               check=True)
            script = ("apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                      "--no-install-recommends " + " ".join(packages[name]) + " >/dev/null")
            start = time.monotonic()
            res = subprocess.run(["docker", "exec", container, "sh", "-c", script], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, check=False)
            if res.returncode != 0:
                raise RuntimeError(f"floor install on {container} failed:\n{res.stdout[-3000:]}")
            return name, time.monotonic() - start

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            per_host = dict(pool.map(install, hosts))
        wall = time.monotonic() - start
    finally:
        run(["ansible-playbook", "-i", str(LAB), str(playbook), "-e", f"@{inventory}", "-e", "bench_state=absent"],
            env=env, cwd=ROOT)
    return wall, per_host, {name: len(p) for name, p in packages.items()}


def floor_only(env: dict, run: Run) -> int:
    """The apt floor of the lab as it is (it must be converged): for comparing floors."""
    hosts = _lab_hosts(env)
    floor, per_host, counts = _floor(env, hosts, run)
    print(f"bench: packages={sum(counts.values())} ({', '.join(f'{h}:{n}' for h, n in sorted(counts.items()))})")
    print(f"bench: apt_floor_s={floor:.1f} (per host: {', '.join(f'{h}:{s:.0f}' for h, s in sorted(per_host.items()))})")
    return 0


def bench(env: dict, run: Run, lab_up: Callable[[], None], lab_down: Callable[[], None]) -> int:
    hosts = _lab_hosts(env)
    print(f"==> bench: fresh lab of {len(hosts)} hosts", flush=True)
    lab_down()
    facts = ROOT / ".ansible" / "facts"
    for cached in facts.glob("*") if facts.is_dir() else []:
        cached.unlink()
    lab_up()
    penv = dict(env, PROFILE_TASKS_TASK_OUTPUT_LIMIT="10", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    site = "playbooks/site.yml"
    first, first_out = _playbook(penv, "first-converge", site)
    rerun, rerun_out = _playbook(penv, "no-change-rerun", site)
    changed = {h: c.get("changed", -1) for h, c in _recap(rerun_out).items() if c.get("changed", -1) != 0}
    if changed:
        raise SystemExit(f"bench: the no-change re-run changed something: {changed} (see .lab/bench-no-change-rerun.log)")
    one, one_out = _playbook(penv, "one-setting-changed", site, "-e", json.dumps(CHANGED_SETTING))
    one_changed = {h: c.get("changed", 0) for h, c in _recap(one_out).items() if c.get("changed", 0)}
    floor, per_host, counts = _floor(env, hosts, run)

    print("\n==> bench results", flush=True)
    print(f"bench: hosts={len(hosts)}")
    print(f"bench: strategy={env.get('ANSIBLE_STRATEGY', 'linear')} (LLMOPS_MITOGEN=1: mitogen_linear)")
    print(f"bench: packages={sum(counts.values())} ({', '.join(f'{h}:{n}' for h, n in sorted(counts.items()))})")
    print(f"bench: apt_floor_s={floor:.1f} (per host: {', '.join(f'{h}:{s:.0f}' for h, s in sorted(per_host.items()))})")
    print(f"bench: first_converge_s={first:.1f}")
    print(f"bench: no_change_rerun_s={rerun:.1f}")
    print(f"bench: one_setting_changed_s={one:.1f} (changed: {one_changed})")
    print(f"bench: ratio_first_converge_to_floor={first / floor:.2f}")
    print(f"bench: ratio_no_change_rerun_to_floor={rerun / floor:.2f}")
    print(f"bench: ratio_one_setting_changed_to_floor={one / floor:.2f}")
    for label, output in (("first converge", first_out), ("no-change re-run", rerun_out),
                          ("one setting changed", one_out)):
        print(f"\nbench: 10 slowest tasks of the {label}:")
        for line in _slowest(output):
            print(f"    {line}")
    print(f"\n(logs: {ROOT / '.lab'}/bench-*.log)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit("run it through the harness: make bench (python3 tests/harness/devenv.py bench)")
