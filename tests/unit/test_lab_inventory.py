"""The lab inventory names each host's container literally. A templated ansible_host
("llmops-lab-{{ inventory_hostname }}") is rendered with the delegating host's name in a
delegated task (upgrade.yml delegates from the app hosts to the load balancers), so the task
ran in the wrong container ("Cannot find docker CLI in path"). The check delegates from every
host to every other one and reads the connection variable Ansible resolved for the delegate."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Resolve the connection variables of a delegate
      ansible.builtin.debug:
        msg: "{{ {'from': inventory_hostname, 'to': item, 'host': ansible_delegated_vars[item]['ansible_host']} | to_json }}"
      delegate_to: "{{ item }}"
      loop: "{{ groups['all'] | difference([inventory_hostname]) }}"
"""


def test_a_delegated_task_reaches_the_delegates_container(tmp_path):
    playbook = tmp_path / "delegate.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1",
               LLMOPS_APT_PROXY="")
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    out = subprocess.run(["ansible-playbook", "-i", str(ROOT / "inventories" / "lab" / "hosts.yml"), str(playbook)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, check=False,
                         cwd=tmp_path)  # not the checkout: its ansible.cfg adds a callback
    assert out.returncode == 0, out.stderr[-2000:]
    pairs = []
    for play in json.loads(out.stdout)["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                for item in result["results"]:
                    pairs.append(json.loads(item["msg"]))
    assert len(pairs) == 7 * 6
    wrong = [p for p in pairs if p["host"] != f"llmops-lab-{p['to']}"]
    assert not wrong, wrong[:3]
