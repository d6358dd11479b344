"""Behaviour of the docker role. docker-trixie (Debian 13, group langfuse_app) runs Debian's
engine with Compose v2; docker-bookworm (Debian 12) only runs the preflight, which must refuse
Debian's packages there (Compose v1 only) and change nothing."""
import json
import re

import pytest
from conftest import recap, run_playbook

TRIXIE, BOOKWORM = "docker-trixie", "docker-bookworm"
IMAGE = "llmops-probe/busybox:test"
# the scenario's pool for docker-trixie (molecule.yml)
POOL_PREFIX = "10.201."


@pytest.fixture(scope="module")
def engine(hosts):
    return hosts[TRIXIE]


@pytest.fixture(scope="module")
def probe_image(engine):
    """A one-binary image made inside the host from Debian's static busybox: there is no registry."""
    engine.check_output(
        "d=$(mktemp -d) && mkdir $d/bin && cp /usr/bin/busybox $d/bin/ "
        "&& for c in sh echo sleep; do ln -s busybox $d/bin/$c; done "
        f"&& tar -C $d -c . | docker import - {IMAGE} && rm -rf $d")
    yield IMAGE
    engine.run(f"docker rmi -f {IMAGE}")


def flat(text: str) -> str:
    """Output with every run of whitespace as one space (the yaml callback wraps long messages)."""
    return " ".join(text.split())


def dockerd(host) -> tuple[int, str]:
    """MainPID and start time of docker.service."""
    out = host.check_output("systemctl show --property MainPID --property ExecMainStartTimestampMonotonic docker")
    props = dict(line.split("=", 1) for line in out.splitlines())
    return int(props["MainPID"]), props["ExecMainStartTimestampMonotonic"]


def docker_info(host) -> dict:
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


def converge_trixie(*args: str):
    return run_playbook("converge.yml", "--limit", TRIXIE, *args)


def test_engine_is_running_and_enabled(engine):
    journal = engine.run("journalctl -u docker --no-pager -n 40").stdout
    assert engine.service("docker").is_running, journal
    assert engine.service("docker").is_enabled
    assert engine.check_output("docker version --format '{{.Server.Version}}'")


def test_compose_is_v2(engine):
    assert re.match(r"v?2\.\d+", engine.check_output("docker compose version --short"))


def test_daemon_json_settings_are_effective(engine):
    conf = json.loads(engine.file("/etc/docker/daemon.json").content_string)
    assert conf["log-opts"] == {"max-size": "20m", "max-file": "5"}
    assert "storage-driver" not in conf
    info = docker_info(engine)
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    # no storage-driver given: dockerd picks overlay2 on the host's /var/lib/docker volume
    assert info["Driver"] == "overlay2"


def test_daemon_json_was_in_place_at_the_first_start(engine):
    # docker0 is addressed from default-address-pools only when it is created: the engine's
    # first start (by the package) already read daemon.json
    assert f"inet {POOL_PREFIX}0.1/24" in engine.check_output("ip -4 -o addr show docker0")
    engine.check_output("docker network create llmops-probe-net")
    try:
        subnet = engine.check_output("docker network inspect llmops-probe-net --format '{{(index .IPAM.Config 0).Subnet}}'")
        assert subnet.startswith(POOL_PREFIX) and subnet.endswith("/24"), subnet
    finally:
        engine.run("docker network rm llmops-probe-net")


def test_container_runs_with_rotated_logs(engine, probe_image):
    assert engine.check_output(f"docker run --rm {probe_image} echo hello from the inner engine") == (
        "hello from the inner engine")
    engine.check_output(f"docker run -d --name llmops-probe-logs {probe_image} sleep 300")
    try:
        log_config = json.loads(engine.check_output(
            "docker inspect --format '{{json .HostConfig.LogConfig}}' llmops-probe-logs"))
        assert log_config == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "20m"}}
    finally:
        engine.run("docker rm -f llmops-probe-logs")


def test_community_docker_modules_work_on_the_host(engine, probe_image):
    # what the langfuse role uses: docker_compose_v2 (CLI plugin), docker_image_info and
    # docker_container_info (python3-requests / python3-docker on the host)
    project = "/tmp/llmops-compose-probe"
    engine.check_output(
        f"mkdir -p {project} && printf 'services:\\n  probe:\\n    image: {probe_image}\\n"
        f"    command: [sleep, \"300\"]\\n' > {project}/compose.yaml")
    try:
        image = engine.ansible("community.docker.docker_image_info", f"name={probe_image}", check=False)
        assert len(image["images"]) == 1
        up = engine.ansible("community.docker.docker_compose_v2",
                            f"project_src={project} project_name=llmops-probe state=present", check=False)
        assert up["changed"]
        info = engine.ansible("community.docker.docker_container_info", "name=llmops-probe-probe-1", check=False)
        assert info["exists"] and info["container"]["State"]["Running"]
    finally:
        engine.ansible("community.docker.docker_compose_v2",
                       f"project_src={project} project_name=llmops-probe state=absent", check=False)
        engine.run(f"rm -rf {project}")
    assert engine.run("docker inspect llmops-probe-probe-1").rc != 0


def test_docker_users_reach_the_engine_and_others_do_not(engine):
    assert "docker" in engine.user("llmops-operator").groups
    assert engine.run("runuser -u llmops-operator -- docker ps").rc == 0
    denied = engine.run("runuser -u nobody -- docker ps")
    assert denied.rc != 0 and "permission denied" in denied.stderr.lower()


def test_preflight_refuses_distro_on_debian_12(hosts):
    run = run_playbook("converge.yml", "--limit", BOOKWORM, "-e", "docker_install_source=distro")
    assert run.returncode != 0
    assert ("docker_install_source=distro is refused on Debian 12 (bookworm): its docker-compose package is "
            "Compose v1 (1.29)") in flat(run.stdout), run.stdout[-3000:]
    counters = recap(run.stdout)[BOOKWORM]
    assert counters["changed"] == 0 and counters["failed"] == 1, counters
    for package in ("docker.io", "docker-compose", "docker-ce"):
        assert not hosts[BOOKWORM].package(package).is_installed


def test_preflight_accepts_dockers_repository_on_debian_12_without_a_change(hosts):
    run = run_playbook("converge.yml", "--limit", BOOKWORM)
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout)[BOOKWORM]["changed"] == 0
    assert not hosts[BOOKWORM].file("/etc/apt/sources.list.d/docker.sources").exists


@pytest.mark.parametrize("extra, message", [
    ({"docker_daemon_options": {"hosts": ["unix:///run/docker.sock"]}},
     "docker_daemon_options sets hosts: the docker.service unit passes it as a command-line flag already"),
    ({"docker_version": "28.0.1"},
     "docker_version '28.0.1' is not usable"),
    ({"docker_daemon_options": {"log-driver": "journald"}},
     "log-driver 'journald' does not take the rotation options max-size / max-file"),
    ({"docker_default_address_pools": [{"base": "10.9.0.0/16", "size": 8}]},
     "docker_default_address_pools entry"),
    ({"docker_users": ["no-such-user"]},
     "docker_users lists users that do not exist on this host: no-such-user."),
], ids=["unit-flag", "version-with-distro", "log-opts", "pool-size", "unknown-user"])
def test_preflight_fails_before_any_change(engine, extra, message):
    before = dockerd(engine), engine.file("/etc/docker/daemon.json").content_string
    run = converge_trixie("-e", json.dumps(extra))
    assert run.returncode != 0
    assert message in flat(run.stdout), run.stdout[-3000:]
    counters = recap(run.stdout)[TRIXIE]
    assert counters["changed"] == 0 and counters["failed"] == 1, counters
    assert before == (dockerd(engine), engine.file("/etc/docker/daemon.json").content_string)


def test_dockerd_validates_daemon_json_before_it_is_written(engine):
    before = dockerd(engine), engine.file("/etc/docker/daemon.json").content_string
    run = converge_trixie("-e", json.dumps({"docker_daemon_options": {"no-such-setting": True}}))
    assert run.returncode != 0
    assert "failed to validate" in flat(run.stdout), run.stdout[-3000:]
    assert "no-such-setting" in flat(run.stdout)
    assert before == (dockerd(engine), engine.file("/etc/docker/daemon.json").content_string)


def test_check_mode_on_the_converged_hosts_changes_nothing():
    run = run_playbook("converge.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    assert all(c["changed"] == 0 for c in recap(run.stdout).values()), run.stdout[-3000:]


def test_unchanged_run_leaves_dockerd_alone(engine):
    before = dockerd(engine)
    run = converge_trixie()
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout)[TRIXIE]["changed"] == 0
    assert "RUNNING HANDLER" not in run.stdout
    assert dockerd(engine) == before


def test_reloadable_setting_is_reloaded_and_its_removal_restarts(engine):
    before = dockerd(engine)
    try:
        run = converge_trixie("-e", json.dumps({"docker_daemon_options": {"labels": ["llmops.probe=reloaded"]}}))
        assert run.returncode == 0, run.stdout[-3000:]
        assert "RUNNING HANDLER [llmops.langfuse.docker : Docker reload" in run.stdout
        assert "llmops.probe=reloaded" in docker_info(engine)["Labels"]
        assert dockerd(engine) == before
    finally:
        # a reload keeps a removed setting's old value: the removal needs a restart
        restore = converge_trixie()
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert "RUNNING HANDLER [llmops.langfuse.docker : Docker restart" in restore.stdout
    assert "llmops.probe=reloaded" not in (docker_info(engine)["Labels"] or [])
    assert dockerd(engine)[0] != before[0]


def test_restart_setting_restarts_dockerd_and_live_restore_keeps_containers(engine, probe_image):
    engine.check_output(f"docker run -d --name llmops-probe-live {probe_image} sleep 600")
    container_pid = engine.check_output("docker inspect --format '{{.State.Pid}}' llmops-probe-live")
    before = dockerd(engine)
    try:
        run = converge_trixie("-e", "docker_log_driver=local")
        assert run.returncode == 0, run.stdout[-3000:]
        assert "RUNNING HANDLER [llmops.langfuse.docker : Docker restart" in run.stdout
        changed = dockerd(engine)
        assert changed[0] != before[0] and changed[1] != before[1]
        assert docker_info(engine)["LoggingDriver"] == "local"
        # live-restore: the container outlived its engine
        assert engine.check_output(
            "docker inspect --format '{{.State.Running}} {{.State.Pid}}' llmops-probe-live") == f"true {container_pid}"
    finally:
        restore = converge_trixie()
        engine.run("docker rm -f llmops-probe-live")
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert dockerd(engine)[0] != changed[0]
    assert docker_info(engine)["LoggingDriver"] == "json-file"
