"""Langfuse's queues through the real BullMQ 5 client: npm's bullmq and ioredis (installed by
tests/harness/devenv.py, LLMOPS_BULLMQ_NODE_PATH), run with node on this machine inside a test
host's network namespace, so that the Redis host's firewall sees that test host's address.

The credentials go to node on its standard input, never on its command line or in its
environment. Each call runs a list of operations and returns one result per operation:

* ``{"op": "add", "queue": Q, "count": N}``: N jobs added to queue Q (as Langfuse's web adds them);
* ``{"op": "counts", "queue": Q}``: BullMQ's own job counts of Q (wait, prioritized, ...);
* ``{"op": "obliterate", "queue": Q}``: Q and all its jobs removed;
* ``{"op": "call", "args": [COMMAND, ...]}``: one raw Redis command; its reply, or the error.
"""
from __future__ import annotations

import json
import os
import subprocess

SCRIPT = r"""
const { Queue } = require('bullmq');
const Redis = require('ioredis');
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const { host, port, username, password, ops } = JSON.parse(input);
  const connection = { host, port, username, password, maxRetriesPerRequest: null };
  const results = [];
  for (const op of ops) {
    if (op.op === 'call') {
      const client = new Redis({ ...connection, lazyConnect: true });
      try {
        await client.connect();
        results.push({ reply: await client.call(...op.args) });
      } catch (err) {
        results.push({ error: String(err.message || err) });
      }
      client.disconnect();
      continue;
    }
    const queue = new Queue(op.queue, { connection });
    if (op.op === 'add') {
      const jobs = Array.from({ length: op.count }, (_, i) => ({ name: 'llmops-test', data: { i } }));
      await queue.addBulk(jobs);
      results.push({ added: op.count });
    } else if (op.op === 'obliterate') {
      await queue.obliterate({ force: true });
      results.push({ obliterated: op.queue });
    } else {
      results.push(await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'failed'));
    }
    await queue.close();
  }
  console.log(JSON.stringify(results));
});
"""


def container_pid(container: str) -> str:
    out = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run(from_container: str, host: str, port: int, username: str, password: str, ops: list[dict]) -> list[dict]:
    """The operations against Redis at host:port as `username`, from the network namespace of the
    test host `from_container`."""
    node_path = os.environ.get("LLMOPS_BULLMQ_NODE_PATH", "")
    assert node_path and os.path.isdir(node_path), \
        f"LLMOPS_BULLMQ_NODE_PATH={node_path!r}: run the tests through tests/harness/devenv.py (npm bullmq)"
    request = json.dumps({"host": host, "port": port, "username": username, "password": password, "ops": ops})
    out = subprocess.run(["nsenter", "-t", container_pid(from_container), "-n", "node", "-e", SCRIPT],
                         input=request, capture_output=True, text=True, timeout=180, check=False,
                         env=dict(os.environ, NODE_PATH=node_path))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
