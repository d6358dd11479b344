# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL settings from the hardware, by the rules of PGTune (https://pgtune.leopard.in.ua).

``pg_tune(inputs)`` returns the parameters PGTune prints for the same inputs, as the strings
it prints (``'4GB'``, ``'20560kB'``, ``'0.9'``, ``'try'``); a parameter PGTune leaves out is
absent. This is an independent Python implementation of PGTune's rules, not a copy of its code.

Upstream version followed: github.com/le0pard/pgtune, ``src/features/configuration/
configurationSlice.js`` in its 2026 state, i.e. the revision that has the ``dbSize`` input and
the PostgreSQL 18 settings ``io_method``/``io_workers`` (it is newer than commits 01bb6447,
which has jit/wal_compression/autovacuum_* but no io_* nor dbSize, and 421728c2, which has
io_* but no dbSize; the copy of that revision consulted does not name its commit), together
with ``configurationView/index.jsx`` (what is printed, in which order, and the kB/MB/GB
formatting) and the selector tests in ``__tests__/configurationSlice.test.js``.

Ported from that revision:

* storage ``nvme`` exists upstream (random_page_cost 1.1, effective_io_concurrency 1000);
* ``db_size`` (the database against RAM) exists upstream; its rules (random_page_cost,
  work_mem) are ported. The stored ``constants.js`` of that revision was not available, so
  the option *values* ``less_ram``/``mid_ram``/``greater_ram`` are this collection's names;
* PostgreSQL 10 to 18 (18 being upstream's default), OS ``linux``, ``windows`` and ``mac``.

Differences from the web form, on purpose: memory below 256 MB (upstream only prints a
warning there) and anything outside the upstream choices raise AnsibleFilterError; the form's
warnings (lz4/liburing build requirements, very large memory) are not returned.
"""

from __future__ import annotations

import math

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests run with ansible installed
    class AnsibleFilterError(Exception):
        pass

PROFILES = ("web", "oltp", "dw", "desktop", "mixed")
STORAGES = ("ssd", "hdd", "san", "nvme")
OS_TYPES = ("linux", "windows", "mac")
DB_SIZES = ("less_ram", "mid_ram", "greater_ram")
PG_VERSIONS = range(10, 19)
MIN_MEMORY_MB = 256

_KEYS = ("total_memory_mb", "cpu_count", "max_connections", "storage", "profile", "pg_version",
         "db_size", "os_type")
_REQUIRED = ("total_memory_mb", "storage", "profile", "pg_version")

# Sizes in kB, the unit every rule works in.
_MB = 1024
_GB = 1024 * 1024

_DEFAULT_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
# (min_wal_size, max_wal_size) in kB
_WAL_SIZES = {
    "web": (1 * _GB, 4 * _GB),
    "oltp": (2 * _GB, 8 * _GB),
    "dw": (4 * _GB, 16 * _GB),
    "desktop": (100 * _MB, 2 * _GB),
    "mixed": (1 * _GB, 4 * _GB),
}
_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}
# max_worker_processes PostgreSQL runs with when PGTune does not set it (cpu unknown or < 4)
_DEFAULT_WORKER_PROCESSES = 8
# Windows before PostgreSQL 18 rejects memory settings of 2GB and more: PGTune uses 2GB - 1MB.
_WINDOWS_MEMORY_LIMIT = 2 * _GB - 1 * _MB


def _size(kb):
    """kB -> PGTune's text: the largest of GB/MB that divides the value exactly, else kB."""
    if kb % _GB == 0:
        return f"{kb // _GB}GB"
    if kb % _MB == 0:
        return f"{kb // _MB}MB"
    return f"{kb}kB"


def _integer(inputs, key, minimum, optional):
    value = inputs.get(key)
    if value is None and optional:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    too_small = minimum is not None and isinstance(value, int) and value < minimum
    if isinstance(value, bool) or not isinstance(value, int) or too_small:
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
        what += " or null" if optional else ""
        raise AnsibleFilterError(f"pg_tune: {key} must be {what}, got {value!r}")
    return value


def _choice(inputs, key, allowed, default=None):
    value = inputs.get(key, default)
    if value is None:
        value = default
    if value not in allowed:
        raise AnsibleFilterError(
            f"pg_tune: unknown {key} {value!r}; allowed: {', '.join(allowed)}")
    return value


def _validate(inputs):
    if not isinstance(inputs, dict):
        raise AnsibleFilterError(f"pg_tune: the input must be a dict, got {type(inputs).__name__}")
    unknown = sorted(set(inputs) - set(_KEYS))
    if unknown:
        raise AnsibleFilterError(
            f"pg_tune: unknown input keys {unknown}; allowed: {', '.join(_KEYS)}")
    missing = [k for k in _REQUIRED if inputs.get(k) is None]
    if missing:
        raise AnsibleFilterError(f"pg_tune: missing required input keys {missing}")
    memory = _integer(inputs, "total_memory_mb", 1, optional=False)
    if memory < MIN_MEMORY_MB:
        raise AnsibleFilterError(
            f"pg_tune: total_memory_mb {memory} is too small; PGTune needs at least {MIN_MEMORY_MB} MB")
    version = _integer(inputs, "pg_version", None, optional=False)
    if version not in PG_VERSIONS:
        raise AnsibleFilterError(
            f"pg_tune: pg_version {version} is not supported; allowed: "
            f"{', '.join(str(v) for v in PG_VERSIONS)}")
    return {
        "memory_kb": memory * _MB,
        "cpu": _integer(inputs, "cpu_count", 1, optional=True),
        "connections": _integer(inputs, "max_connections", 1, optional=True),
        "storage": _choice(inputs, "storage", STORAGES),
        "profile": _choice(inputs, "profile", PROFILES),
        "version": version,
        "db_size": _choice(inputs, "db_size", DB_SIZES, default="mid_ram"),
        "os": _choice(inputs, "os_type", OS_TYPES, default="linux"),
    }


def _parallel(cpu, profile, version):
    """Parallel query settings; none below 4 CPUs or when the CPU count is unknown."""
    if not cpu or cpu < 4:
        return {}
    half = math.ceil(cpu / 2)
    settings = {
        "max_worker_processes": cpu,
        "max_parallel_workers_per_gather": half if profile == "dw" else min(half, 4),
        "max_parallel_workers": cpu,  # PostgreSQL 10+
    }
    if version >= 11:
        settings["max_parallel_maintenance_workers"] = min(half, 4)
    return settings


def _work_mem(c, shared_buffers, connections, parallel):
    windows_cap = c["os"] == "windows" and c["version"] <= 17
    workers = parallel.get("max_worker_processes") or _DEFAULT_WORKER_PROCESSES
    # (RAM - shared_buffers) / ((max_connections + max_worker_processes) * 3), in floating
    # point as upstream (the 1.3 / 0.9 factors below round exactly as there).
    base = (c["memory_kb"] - shared_buffers) / ((connections + workers) * 3)
    divisor = {"dw": 2, "mixed": 2, "desktop": 6}.get(c["profile"], 1)
    value = math.floor(base / divisor) if divisor > 1 else math.floor(base)
    if c["db_size"] == "less_ram":
        value = math.floor(value * 1.3)
    elif c["db_size"] == "greater_ram":
        value = math.floor(value * 0.9)
    value = max(value, 4 * _MB)
    if windows_cap:
        value = min(value, _WINDOWS_MEMORY_LIMIT)
    return value


def pg_tune(inputs):
    """PGTune's recommendation for ``inputs`` as ``{parameter: value string}``.

    Keys of ``inputs``: ``total_memory_mb``, ``profile``, ``storage``, ``pg_version``
    (required); ``cpu_count`` and ``max_connections`` (null: unknown / profile default);
    ``db_size`` (default ``mid_ram``) and ``os_type`` (default ``linux``).
    """
    c = _validate(inputs)
    profile, version, os_type, cpu = c["profile"], c["version"], c["os"], c["cpu"]
    memory_kb = c["memory_kb"]
    windows_cap = os_type == "windows" and version <= 17

    connections = c["connections"] or _DEFAULT_CONNECTIONS[profile]
    # Windows' 512MB shared_buffers limit of PGTune applies before PostgreSQL 10 only.
    shared_buffers = memory_kb // 16 if profile == "desktop" else memory_kb // 4
    effective_cache = memory_kb // 4 if profile == "desktop" else memory_kb * 3 // 4

    maintenance = memory_kb // 8 if profile == "dw" else memory_kb // 16
    if windows_cap:
        if maintenance >= 2 * _GB:
            maintenance = _WINDOWS_MEMORY_LIMIT
    else:
        maintenance = min(maintenance, 8 * _GB)

    wal_buffers = min(3 * shared_buffers // 100, 16 * _MB)
    if 14 * _MB < wal_buffers < 16 * _MB:
        wal_buffers = 16 * _MB
    wal_buffers = max(wal_buffers, 32)

    if c["db_size"] == "less_ram":
        random_page_cost = "1.1"  # the database is served from the page cache
    elif c["storage"] == "hdd" or profile == "dw":
        random_page_cost = "4"
    else:
        random_page_cost = "1.1"

    parallel = _parallel(cpu, profile, version)
    work_mem = _work_mem(c, shared_buffers, connections, parallel)

    result = {
        "max_connections": str(connections),
        "shared_buffers": _size(shared_buffers),
        "effective_cache_size": _size(effective_cache),
        "maintenance_work_mem": _size(maintenance),
        "checkpoint_completion_target": "0.9",
        "wal_buffers": _size(wal_buffers),
        "default_statistics_target": "500" if profile == "dw" else "100",
        "random_page_cost": random_page_cost,
    }
    if os_type == "linux":
        result["effective_io_concurrency"] = str(_IO_CONCURRENCY[c["storage"]])
    result["work_mem"] = _size(work_mem)
    result["huge_pages"] = "try" if os_type != "mac" and shared_buffers >= 2 * _GB else "off"
    if version >= 12 and profile in ("web", "oltp", "mixed"):
        result["jit"] = "off"
    result["wal_compression"] = "lz4" if version >= 15 else "on"
    if cpu and cpu >= 32:
        result["autovacuum_max_workers"] = "5"
    elif cpu and cpu >= 16:
        result["autovacuum_max_workers"] = "4"
    if maintenance >= 2 * _GB:
        # Windows <= 17 never gets here: its maintenance_work_mem is capped below 2GB.
        result["autovacuum_work_mem"] = _size(2 * _GB)
    if version >= 18:
        result["io_method"] = "io_uring" if os_type == "linux" else "worker"
        if cpu:
            io_workers = min(32, max(3, cpu // 4))
            if io_workers > 3:
                result["io_workers"] = str(io_workers)
    min_wal, max_wal = _WAL_SIZES[profile]
    result["min_wal_size"] = _size(min_wal)
    result["max_wal_size"] = _size(max_wal)
    result.update((k, str(v)) for k, v in parallel.items())
    if profile == "desktop":
        result["wal_level"] = "minimal"
        result["max_wal_senders"] = "0"
    return result


class FilterModule:
    """llmops.langfuse PostgreSQL tuning filter."""

    def filters(self):
        return {"pg_tune": pg_tune}
