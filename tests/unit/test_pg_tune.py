"""llmops.langfuse pg_tune filter (plugins/filter/pg_tune.py).

Every expected value is computed by hand from PGTune's rules; the comment above each case
shows the arithmetic. All sizes are in kB: RAM kB = MB * 1024, 1MB = 1024 kB, 1GB = 1048576 kB.
A size prints as GB/MB only when it divides exactly, else as kB. work_mem is
(RAM - shared_buffers) / ((max_connections + workers) * 3) with workers = max_worker_processes
when set, else 8; dw/mixed divide it by 2, desktop by 6; floor 4MB.
"""
import pytest
from ansible.errors import AnsibleFilterError
from pg_tune import FilterModule, pg_tune


def tune(**kwargs):
    inputs = {"storage": "ssd", "profile": "web", "pg_version": 16, "cpu_count": None,
              "max_connections": None}
    inputs.update(kwargs)
    return pg_tune(inputs)


CASES = [
    pytest.param(
        # web, 4GB, no CPU count, PG 16, linux ssd.
        # RAM 4194304; conn 200 (web default); shared_buffers 4194304/4 = 1048576 = 1GB;
        # effective_cache 4194304*3/4 = 3145728 = 3GB; maintenance 4194304/16 = 262144 = 256MB;
        # wal_buffers 3*1048576/100 = 31457 > 16384 -> 16MB; work_mem 3145728/((200+8)*3=624)
        # = 5041.2 -> 5041kB; huge_pages: 1GB < 2GB -> off; jit off (PG>=12, web);
        # wal_compression lz4 (PG>=15); no parallel settings (cpu unknown).
        {"total_memory_mb": 4096},
        {"max_connections": "200", "shared_buffers": "1GB", "effective_cache_size": "3GB",
         "maintenance_work_mem": "256MB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "200",
         "work_mem": "5041kB", "huge_pages": "off", "jit": "off", "wal_compression": "lz4",
         "min_wal_size": "1GB", "max_wal_size": "4GB"},
        id="web-4GB-no-cpu-pg16",
    ),
    pytest.param(
        # oltp, 16GB, 8 CPUs, PG 14, hdd.
        # RAM 16777216; conn 300; shared_buffers 4194304 = 4GB; effective_cache 12582912 = 12GB;
        # maintenance /16 = 1048576 = 1GB; wal_buffers 125829 -> 16MB; random_page_cost 4 (hdd);
        # effective_io_concurrency 2 (hdd); parallel: workers 8, per_gather ceil(8/2) = 4,
        # maintenance workers min(4, 4) = 4 (PG>=11); work_mem (16777216-4194304)/((300+8)*3)
        # = 12582912/924 = 13617.9 -> 13617kB; huge_pages try (4GB >= 2GB); jit off;
        # wal_compression on (PG 14 < 15); min/max_wal 2GB/8GB (oltp).
        {"total_memory_mb": 16384, "profile": "oltp", "storage": "hdd", "pg_version": 14, "cpu_count": 8},
        {"max_connections": "300", "shared_buffers": "4GB", "effective_cache_size": "12GB",
         "maintenance_work_mem": "1GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "4", "effective_io_concurrency": "2",
         "work_mem": "13617kB", "huge_pages": "try", "jit": "off", "wal_compression": "on",
         "min_wal_size": "2GB", "max_wal_size": "8GB", "max_worker_processes": "8",
         "max_parallel_workers_per_gather": "4", "max_parallel_workers": "8",
         "max_parallel_maintenance_workers": "4"},
        id="oltp-16GB-8cpu-pg14-hdd",
    ),
    pytest.param(
        # dw, 64GB, 32 CPUs, PG 17, ssd.
        # RAM 67108864; conn 40; shared_buffers 16777216 = 16GB; effective_cache 50331648 = 48GB;
        # maintenance /8 = 8388608 = 8GB (= the 8GB cap); random_page_cost 4 (dw on ssd, db not
        # in RAM); statistics 500; parallel: per_gather ceil(32/2) = 16 (dw: no cap of 4),
        # maintenance workers min(16, 4) = 4; work_mem (67108864-16777216)/((40+32)*3)
        # = 50331648/216 = 233016.9, /2 (dw) = 116508.4 -> 116508kB; autovacuum_max_workers 5
        # (cpu >= 32); autovacuum_work_mem 2GB (maintenance 8GB >= 2GB); no jit (dw);
        # min/max_wal 4GB/16GB.
        {"total_memory_mb": 65536, "profile": "dw", "pg_version": 17, "cpu_count": 32},
        {"max_connections": "40", "shared_buffers": "16GB", "effective_cache_size": "48GB",
         "maintenance_work_mem": "8GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "500", "random_page_cost": "4", "effective_io_concurrency": "200",
         "work_mem": "116508kB", "huge_pages": "try", "wal_compression": "lz4",
         "autovacuum_max_workers": "5", "autovacuum_work_mem": "2GB", "min_wal_size": "4GB",
         "max_wal_size": "16GB", "max_worker_processes": "32", "max_parallel_workers_per_gather": "16",
         "max_parallel_workers": "32", "max_parallel_maintenance_workers": "4"},
        id="dw-64GB-32cpu-pg17",
    ),
    pytest.param(
        # desktop, 8GB, no CPU count, PG 18, linux ssd.
        # RAM 8388608; conn 20; shared_buffers /16 = 524288 = 512MB; effective_cache /4
        # = 2097152 = 2GB; maintenance /16 = 512MB; wal_buffers 3*524288/100 = 15728, between
        # 14MB (14336) and 16MB -> rounded up to 16MB; work_mem (8388608-524288)/((20+8)*3)
        # = 7864320/84 = 93622.9, /6 = 15603.8 -> 15603kB; huge_pages off; no jit (desktop);
        # io_method io_uring (PG 18, linux); no io_workers (cpu unknown);
        # min/max_wal 100MB/2GB; wal_level minimal + max_wal_senders 0.
        {"total_memory_mb": 8192, "profile": "desktop", "pg_version": 18},
        {"max_connections": "20", "shared_buffers": "512MB", "effective_cache_size": "2GB",
         "maintenance_work_mem": "512MB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "200",
         "work_mem": "15603kB", "huge_pages": "off", "wal_compression": "lz4", "io_method": "io_uring",
         "min_wal_size": "100MB", "max_wal_size": "2GB", "wal_level": "minimal", "max_wal_senders": "0"},
        id="desktop-8GB-pg18",
    ),
    pytest.param(
        # mixed, 32GB, 16 CPUs, 150 connections given, PG 15, san.
        # RAM 33554432; shared_buffers 8388608 = 8GB; effective_cache 25165824 = 24GB;
        # maintenance /16 = 2097152 = 2GB; effective_io_concurrency 300 (san); random_page_cost 1.1;
        # parallel: per_gather min(8, 4) = 4, maintenance 4; work_mem (33554432-8388608)/((150+16)*3)
        # = 25165824/498 = 50533.8, /2 (mixed) = 25266.9 -> 25266kB; autovacuum_max_workers 4
        # (16 <= cpu < 32); autovacuum_work_mem 2GB (maintenance 2GB >= 2GB); jit off; lz4.
        {"total_memory_mb": 32768, "profile": "mixed", "storage": "san", "pg_version": 15,
         "cpu_count": 16, "max_connections": 150},
        {"max_connections": "150", "shared_buffers": "8GB", "effective_cache_size": "24GB",
         "maintenance_work_mem": "2GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "300",
         "work_mem": "25266kB", "huge_pages": "try", "jit": "off", "wal_compression": "lz4",
         "autovacuum_max_workers": "4", "autovacuum_work_mem": "2GB", "min_wal_size": "1GB",
         "max_wal_size": "4GB", "max_worker_processes": "16", "max_parallel_workers_per_gather": "4",
         "max_parallel_workers": "16", "max_parallel_maintenance_workers": "4"},
        id="mixed-32GB-16cpu-150conn-pg15-san",
    ),
    pytest.param(
        # web, 128GB, 64 CPUs, PG 18, nvme.
        # RAM 134217728; shared_buffers 33554432 = 32GB; effective_cache 100663296 = 96GB;
        # maintenance /16 = 8388608 = 8GB; effective_io_concurrency 1000 (nvme); work_mem
        # (134217728-33554432)/((200+64)*3) = 100663296/792 = 127100.1 -> 127100kB;
        # autovacuum_max_workers 5; autovacuum_work_mem 2GB; io_method io_uring; io_workers
        # min(32, max(3, 64//4 = 16)) = 16.
        {"total_memory_mb": 131072, "storage": "nvme", "pg_version": 18, "cpu_count": 64},
        {"max_connections": "200", "shared_buffers": "32GB", "effective_cache_size": "96GB",
         "maintenance_work_mem": "8GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "1000",
         "work_mem": "127100kB", "huge_pages": "try", "jit": "off", "wal_compression": "lz4",
         "autovacuum_max_workers": "5", "autovacuum_work_mem": "2GB", "io_method": "io_uring",
         "io_workers": "16", "min_wal_size": "1GB", "max_wal_size": "4GB", "max_worker_processes": "64",
         "max_parallel_workers_per_gather": "4", "max_parallel_workers": "64",
         "max_parallel_maintenance_workers": "4"},
        id="web-128GB-64cpu-pg18-nvme",
    ),
    pytest.param(
        # dw, 512GB, no CPU count, PG 16, hdd: the caps.
        # RAM 536870912; shared_buffers 134217728 = 128GB; effective_cache 402653184 = 384GB;
        # maintenance /8 = 67108864 -> capped at 8GB; work_mem (536870912-134217728)/((40+8)*3)
        # = 402653184/144 = 2796202.7, /2 = 1398101.3 -> 1398101kB; random_page_cost 4;
        # effective_io_concurrency 2; autovacuum_work_mem 2GB; no autovacuum_max_workers (cpu unknown).
        {"total_memory_mb": 524288, "profile": "dw", "storage": "hdd"},
        {"max_connections": "40", "shared_buffers": "128GB", "effective_cache_size": "384GB",
         "maintenance_work_mem": "8GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "500", "random_page_cost": "4", "effective_io_concurrency": "2",
         "work_mem": "1398101kB", "huge_pages": "try", "wal_compression": "lz4",
         "autovacuum_work_mem": "2GB", "min_wal_size": "4GB", "max_wal_size": "16GB"},
        id="dw-512GB-caps",
    ),
    pytest.param(
        # web, 256GB, 4 CPUs, 20 connections, windows, PG 17 (upstream's own test case).
        # RAM 268435456; shared_buffers 67108864 = 64GB; effective_cache 201326592 = 192GB;
        # maintenance /16 = 16777216 >= 2GB -> Windows PG <= 17: 2GB - 1MB = 2096128 = 2047MB;
        # no effective_io_concurrency (not linux); parallel cpu 4: per_gather ceil(4/2) = 2,
        # maintenance 2; work_mem (268435456-67108864)/((20+4)*3) = 201326592/72 = 2796202.7
        # -> 2796202 -> Windows cap 2096128 = 2047MB; no autovacuum_work_mem (2047MB < 2GB);
        # huge_pages try (windows is not mac); no io_* (PG 17).
        {"total_memory_mb": 262144, "os_type": "windows", "pg_version": 17, "cpu_count": 4,
         "max_connections": 20},
        {"max_connections": "20", "shared_buffers": "64GB", "effective_cache_size": "192GB",
         "maintenance_work_mem": "2047MB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "work_mem": "2047MB",
         "huge_pages": "try", "jit": "off", "wal_compression": "lz4", "min_wal_size": "1GB",
         "max_wal_size": "4GB", "max_worker_processes": "4", "max_parallel_workers_per_gather": "2",
         "max_parallel_workers": "4", "max_parallel_maintenance_workers": "2"},
        id="windows-pg17-2GB-limits",
    ),
    pytest.param(
        # Same as above on PG 18: the Windows 2GB limits are gone.
        # maintenance 16777216 -> 8GB cap; work_mem 2796202kB (uncapped); autovacuum_work_mem 2GB;
        # io_method worker (not linux); io_workers max(3, 4//4 = 1) = 3 = the default -> absent.
        {"total_memory_mb": 262144, "os_type": "windows", "pg_version": 18, "cpu_count": 4,
         "max_connections": 20},
        {"max_connections": "20", "shared_buffers": "64GB", "effective_cache_size": "192GB",
         "maintenance_work_mem": "8GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "work_mem": "2796202kB",
         "huge_pages": "try", "jit": "off", "wal_compression": "lz4", "autovacuum_work_mem": "2GB",
         "io_method": "worker", "min_wal_size": "1GB", "max_wal_size": "4GB",
         "max_worker_processes": "4", "max_parallel_workers_per_gather": "2",
         "max_parallel_workers": "4", "max_parallel_maintenance_workers": "2"},
        id="windows-pg18-no-limits",
    ),
    pytest.param(
        # oltp, 64GB, 12 CPUs, mac, PG 13.
        # RAM 67108864; shared_buffers 16GB; effective_cache 48GB; maintenance /16 = 4194304 = 4GB;
        # no effective_io_concurrency (mac); huge_pages off (mac, whatever the size);
        # parallel per_gather min(6, 4) = 4; work_mem (67108864-16777216)/((300+12)*3)
        # = 50331648/936 = 53773.1 -> 53773kB; wal_compression on (PG 13); jit off (PG 13 >= 12);
        # autovacuum_work_mem 2GB (4GB >= 2GB); no autovacuum_max_workers (12 < 16).
        {"total_memory_mb": 65536, "profile": "oltp", "os_type": "mac", "pg_version": 13,
         "cpu_count": 12},
        {"max_connections": "300", "shared_buffers": "16GB", "effective_cache_size": "48GB",
         "maintenance_work_mem": "4GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "work_mem": "53773kB",
         "huge_pages": "off", "jit": "off", "wal_compression": "on", "autovacuum_work_mem": "2GB",
         "min_wal_size": "2GB", "max_wal_size": "8GB", "max_worker_processes": "12",
         "max_parallel_workers_per_gather": "4", "max_parallel_workers": "12",
         "max_parallel_maintenance_workers": "4"},
        id="mac-oltp-pg13",
    ),
    pytest.param(
        # web, 8GB, 8 CPUs, PG 10: no max_parallel_maintenance_workers (PG 11+), no jit (PG 12+),
        # wal_compression on. RAM 8388608; shared_buffers 2097152 = 2GB -> huge_pages try
        # (>= 2GB exactly); effective_cache 6291456 = 6GB; maintenance 524288 = 512MB;
        # work_mem (8388608-2097152)/((200+8)*3) = 6291456/624 = 10082.5 -> 10082kB.
        {"total_memory_mb": 8192, "pg_version": 10, "cpu_count": 8},
        {"max_connections": "200", "shared_buffers": "2GB", "effective_cache_size": "6GB",
         "maintenance_work_mem": "512MB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "200",
         "work_mem": "10082kB", "huge_pages": "try", "wal_compression": "on", "min_wal_size": "1GB",
         "max_wal_size": "4GB", "max_worker_processes": "8", "max_parallel_workers_per_gather": "4",
         "max_parallel_workers": "8"},
        id="web-pg10",
    ),
    pytest.param(
        # Same on PG 11: adds max_parallel_maintenance_workers min(ceil(8/2), 4) = 4; still no jit.
        {"total_memory_mb": 8192, "pg_version": 11, "cpu_count": 8},
        {"max_connections": "200", "shared_buffers": "2GB", "effective_cache_size": "6GB",
         "maintenance_work_mem": "512MB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "200",
         "work_mem": "10082kB", "huge_pages": "try", "wal_compression": "on", "min_wal_size": "1GB",
         "max_wal_size": "4GB", "max_worker_processes": "8", "max_parallel_workers_per_gather": "4",
         "max_parallel_workers": "8", "max_parallel_maintenance_workers": "4"},
        id="web-pg11",
    ),
    pytest.param(
        # web, 256MB (the minimum), 2 CPUs, PG 16, hdd.
        # RAM 262144; shared_buffers 65536 = 64MB; effective_cache 196608 = 192MB; maintenance
        # 16384 = 16MB; wal_buffers 3*65536/100 = 1966.08 -> 1966kB; no parallel (2 < 4 CPUs);
        # work_mem 196608/((200+8)*3) = 315 -> raised to the 4MB floor; huge_pages off.
        {"total_memory_mb": 256, "storage": "hdd", "cpu_count": 2},
        {"max_connections": "200", "shared_buffers": "64MB", "effective_cache_size": "192MB",
         "maintenance_work_mem": "16MB", "checkpoint_completion_target": "0.9", "wal_buffers": "1966kB",
         "default_statistics_target": "100", "random_page_cost": "4", "effective_io_concurrency": "2",
         "work_mem": "4MB", "huge_pages": "off", "jit": "off", "wal_compression": "lz4",
         "min_wal_size": "1GB", "max_wal_size": "4GB"},
        id="web-256MB-2cpu",
    ),
    pytest.param(
        # desktop, 256MB, windows, PG 12, hdd.
        # RAM 262144; shared_buffers /16 = 16384 = 16MB; effective_cache /4 = 65536 = 64MB;
        # maintenance /16 = 16MB; wal_buffers 3*16384/100 = 491.5 -> 491kB; random_page_cost 4;
        # no effective_io_concurrency (windows); work_mem (262144-16384)/((20+8)*3) = 2925.7,
        # /6 = 487.6 -> 4MB floor; no jit (desktop); wal_compression on (PG 12);
        # wal_level minimal, max_wal_senders 0.
        {"total_memory_mb": 256, "profile": "desktop", "storage": "hdd", "os_type": "windows",
         "pg_version": 12},
        {"max_connections": "20", "shared_buffers": "16MB", "effective_cache_size": "64MB",
         "maintenance_work_mem": "16MB", "checkpoint_completion_target": "0.9", "wal_buffers": "491kB",
         "default_statistics_target": "100", "random_page_cost": "4", "work_mem": "4MB",
         "huge_pages": "off", "wal_compression": "on", "min_wal_size": "100MB", "max_wal_size": "2GB",
         "wal_level": "minimal", "max_wal_senders": "0"},
        id="desktop-256MB-windows-pg12",
    ),
    pytest.param(
        # web, 16GB, hdd, database smaller than RAM.
        # random_page_cost 1.1 despite hdd (served from the page cache); effective_io_concurrency 2;
        # work_mem (16777216-4194304)/((200+8)*3) = 12582912/624 = 20164.9 -> 20164,
        # *1.3 = 26213.2 -> 26213kB.
        {"total_memory_mb": 16384, "storage": "hdd", "db_size": "less_ram"},
        {"max_connections": "200", "shared_buffers": "4GB", "effective_cache_size": "12GB",
         "maintenance_work_mem": "1GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "2",
         "work_mem": "26213kB", "huge_pages": "try", "jit": "off", "wal_compression": "lz4",
         "min_wal_size": "1GB", "max_wal_size": "4GB"},
        id="web-hdd-less-ram",
    ),
    pytest.param(
        # dw, 16GB, nvme, database larger than RAM.
        # maintenance /8 = 2097152 = 2GB -> autovacuum_work_mem 2GB; random_page_cost 4 (dw);
        # effective_io_concurrency 1000; work_mem 12582912/((40+8)*3) = 87381.3, /2 = 43690.7
        # -> 43690, *0.9 = 39321 -> 39321kB.
        {"total_memory_mb": 16384, "profile": "dw", "storage": "nvme", "db_size": "greater_ram"},
        {"max_connections": "40", "shared_buffers": "4GB", "effective_cache_size": "12GB",
         "maintenance_work_mem": "2GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "500", "random_page_cost": "4", "effective_io_concurrency": "1000",
         "work_mem": "39321kB", "huge_pages": "try", "wal_compression": "lz4",
         "autovacuum_work_mem": "2GB", "min_wal_size": "4GB", "max_wal_size": "16GB"},
        id="dw-nvme-greater-ram",
    ),
    pytest.param(
        # web, 256GB, 256 CPUs, 500 connections, PG 18.
        # shared_buffers 64GB; effective_cache 192GB; maintenance 16777216 -> 8GB; work_mem
        # (268435456-67108864)/((500+256)*3) = 201326592/2268 = 88768.3 -> 88768kB;
        # io_workers min(32, 256//4 = 64) = 32 (PostgreSQL's maximum); autovacuum_max_workers 5.
        {"total_memory_mb": 262144, "pg_version": 18, "cpu_count": 256, "max_connections": 500},
        {"max_connections": "500", "shared_buffers": "64GB", "effective_cache_size": "192GB",
         "maintenance_work_mem": "8GB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "effective_io_concurrency": "200",
         "work_mem": "88768kB", "huge_pages": "try", "jit": "off", "wal_compression": "lz4",
         "autovacuum_max_workers": "5", "autovacuum_work_mem": "2GB", "io_method": "io_uring",
         "io_workers": "32", "min_wal_size": "1GB", "max_wal_size": "4GB",
         "max_worker_processes": "256", "max_parallel_workers_per_gather": "4",
         "max_parallel_workers": "256", "max_parallel_maintenance_workers": "4"},
        id="web-256cpu-io-workers-cap",
    ),
    pytest.param(
        # mixed, 4GB, 16 CPUs, mac, PG 18.
        # shared_buffers 1GB; effective_cache 3GB; maintenance 256MB; no effective_io_concurrency;
        # work_mem (4194304-1048576)/((100+16)*3) = 3145728/348 = 9039.4, /2 = 4519.7 -> 4519kB;
        # autovacuum_max_workers 4; io_method worker (mac); io_workers 16//4 = 4 > 3 -> 4.
        {"total_memory_mb": 4096, "profile": "mixed", "os_type": "mac", "pg_version": 18,
         "cpu_count": 16},
        {"max_connections": "100", "shared_buffers": "1GB", "effective_cache_size": "3GB",
         "maintenance_work_mem": "256MB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "100", "random_page_cost": "1.1", "work_mem": "4519kB",
         "huge_pages": "off", "jit": "off", "wal_compression": "lz4", "autovacuum_max_workers": "4",
         "io_method": "worker", "io_workers": "4", "min_wal_size": "1GB", "max_wal_size": "4GB",
         "max_worker_processes": "16", "max_parallel_workers_per_gather": "4",
         "max_parallel_workers": "16", "max_parallel_maintenance_workers": "4"},
        id="mixed-mac-pg18",
    ),
    pytest.param(
        # dw, 16GB, windows, PG 15, 3 CPUs.
        # maintenance /8 = 2097152 >= 2GB -> 2GB - 1MB = 2096128 = 2047MB, hence no
        # autovacuum_work_mem; no parallel (3 < 4); work_mem 12582912/144 = 87381.3, /2 -> 43690kB.
        {"total_memory_mb": 16384, "profile": "dw", "os_type": "windows", "pg_version": 15,
         "cpu_count": 3},
        {"max_connections": "40", "shared_buffers": "4GB", "effective_cache_size": "12GB",
         "maintenance_work_mem": "2047MB", "checkpoint_completion_target": "0.9", "wal_buffers": "16MB",
         "default_statistics_target": "500", "random_page_cost": "4", "work_mem": "43690kB",
         "huge_pages": "try", "wal_compression": "lz4", "min_wal_size": "4GB", "max_wal_size": "16GB"},
        id="dw-windows-pg15-3cpu",
    ),
]


@pytest.mark.parametrize("inputs, expected", CASES)
def test_pg_tune_matches_the_hand_computed_values(inputs, expected):
    assert tune(**inputs) == expected


def test_jit_starts_at_pg12():
    # web: jit off from PG 12 on, absent before; dw never sets it.
    assert "jit" not in tune(total_memory_mb=4096, pg_version=11)
    assert tune(total_memory_mb=4096, pg_version=12)["jit"] == "off"
    assert "jit" not in tune(total_memory_mb=4096, pg_version=18, profile="dw")


def test_wal_compression_switches_to_lz4_at_pg15():
    assert tune(total_memory_mb=4096, pg_version=14)["wal_compression"] == "on"
    assert tune(total_memory_mb=4096, pg_version=15)["wal_compression"] == "lz4"


def test_io_settings_start_at_pg18():
    # 32 CPUs: io_workers 32//4 = 8 on PG 18; nothing on PG 17.
    pg17 = tune(total_memory_mb=4096, pg_version=17, cpu_count=32)
    assert "io_method" not in pg17 and "io_workers" not in pg17
    pg18 = tune(total_memory_mb=4096, pg_version=18, cpu_count=32)
    assert (pg18["io_method"], pg18["io_workers"]) == ("io_uring", "8")


def test_parallel_settings_start_at_4_cpus():
    assert "max_worker_processes" not in tune(total_memory_mb=4096, cpu_count=3)
    assert tune(total_memory_mb=4096, cpu_count=4)["max_worker_processes"] == "4"


def test_db_size_defaults_to_mid_ram_and_os_to_linux():
    base = tune(total_memory_mb=16384, profile="dw")
    assert base == tune(total_memory_mb=16384, profile="dw", db_size="mid_ram", os_type="linux")
    # dw on ssd keeps random_page_cost 4 unless the database fits in RAM.
    assert base["random_page_cost"] == "4"
    assert tune(total_memory_mb=16384, profile="dw", db_size="less_ram")["random_page_cost"] == "1.1"


def test_output_order_follows_pgtune():
    result = tune(total_memory_mb=65536, profile="desktop", pg_version=18, cpu_count=64)
    assert list(result) == [
        "max_connections", "shared_buffers", "effective_cache_size", "maintenance_work_mem",
        "checkpoint_completion_target", "wal_buffers", "default_statistics_target", "random_page_cost",
        "effective_io_concurrency", "work_mem", "huge_pages", "wal_compression",
        "autovacuum_max_workers", "autovacuum_work_mem", "io_method", "io_workers", "min_wal_size",
        "max_wal_size", "max_worker_processes", "max_parallel_workers_per_gather",
        "max_parallel_workers", "max_parallel_maintenance_workers", "wal_level", "max_wal_senders",
    ]
    assert all(isinstance(v, str) for v in result.values())


def test_numeric_strings_are_accepted():
    # Facts and extra vars often arrive as strings.
    assert tune(total_memory_mb="4096", pg_version="16") == tune(total_memory_mb=4096, pg_version=16)


def test_filter_is_exposed():
    assert FilterModule().filters()["pg_tune"] is pg_tune


@pytest.mark.parametrize("inputs, message", [
    ({"profile": "olap"}, r"unknown profile 'olap'; allowed: web, oltp, dw, desktop, mixed"),
    ({"storage": "tape"}, r"unknown storage 'tape'; allowed: ssd, hdd, san, nvme"),
    ({"os_type": "bsd"}, r"unknown os_type 'bsd'; allowed: linux, windows, mac"),
    ({"db_size": "huge"}, r"unknown db_size 'huge'; allowed: less_ram, mid_ram, greater_ram"),
    ({"pg_version": 9}, r"pg_version 9 is not supported; allowed: 10, 11, 12, 13, 14, 15, 16, 17, 18"),
    ({"pg_version": 19}, r"pg_version 19 is not supported"),
    ({"pg_version": "sixteen"}, r"pg_version must be an integer, got 'sixteen'"),
    ({"total_memory_mb": 255}, r"total_memory_mb 255 is too small; PGTune needs at least 256 MB"),
    ({"total_memory_mb": True}, r"total_memory_mb must be an integer >= 1, got True"),
    ({"cpu_count": 0}, r"cpu_count must be an integer >= 1 or null, got 0"),
    ({"max_connections": -5}, r"max_connections must be an integer >= 1 or null, got -5"),
    ({"shared_buffers": "1GB"}, r"unknown input keys \['shared_buffers'\]"),
    ({"profile": None}, r"missing required input keys \['profile'\]"),
])
def test_bad_inputs_are_refused_with_the_allowed_values(inputs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        tune(**{"total_memory_mb": 4096, **inputs})


def test_input_must_be_a_dict():
    with pytest.raises(AnsibleFilterError, match="must be a dict, got list"):
        pg_tune([4096])
