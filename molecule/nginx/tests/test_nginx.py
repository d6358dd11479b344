"""Behaviour of the nginx role: nginx-lb (Debian 13, intermediate TLS profile) and
nginx-lb-bookworm (Debian 12, modern profile) in front of nginx-app1/nginx-app2 (JSON echo
services on port 3000, see prepare.yml), seen from nginx-client.

The scenario's rate limits (molecule.yml): /rate-limited/ 10 r/s with burst 20 (nodelay);
/api/public/ingestion 2 r/m with burst 1, keyed by the Langfuse public key; / 100 r/s, burst 400.

The tests at the end of this file converge nginx-lb with other settings (a trusted proxy, the
other certificate sources); the scenario's configuration is restored when the module ends."""
import base64
import json
import os
import re
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import address, can_connect, recap, run_playbook

LB, LB12, APP1, APP2, CLIENT = "nginx-lb", "nginx-lb-bookworm", "nginx-app1", "nginx-app2", "nginx-client"
LBS = (LB, LB12)
CA_ON_CLIENT = "/root/nginx-ca.crt"  # the CA certificates of both load balancers
RATE, BURST = 10, 20  # zone "probe" of molecule.yml

# Runs on the client: HTTPS requests that trust the fetched CA, results as JSON on stdout.
CLIENT_LIB = f"""
import http.client, json, socket, ssl, sys, time
CTX = ssl.create_default_context(cafile={CA_ON_CLIENT!r})

def fetch(path, n=1, headers=None, method="GET", host={LB!r}):
    out, conn = [], None
    for _ in range(n):
        if conn is None:
            conn = http.client.HTTPSConnection(host, 443, context=CTX, timeout=30)
        conn.request(method, path, headers=headers or {{}})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        out.append({{"status": resp.status, "body": body,
                     "headers": {{k.lower(): v for k, v in resp.getheaders()}}}})
        if resp.will_close:
            conn.close()
            conn = None
    return out
"""


def client_py(client, code: str):
    """Run CLIENT_LIB + code with python3 on the client; code prints one JSON document."""
    script = base64.b64encode((CLIENT_LIB + code).encode()).decode()
    result = client.run(f"echo {script} | base64 -d | python3 -")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def fetch(client, path, n=1, headers=None, method="GET", host=LB):
    return client_py(client, f"print(json.dumps(fetch({path!r}, {n}, {headers!r}, {method!r}, {host!r})))")


def hostnames(responses):
    return [json.loads(r["body"])["hostname"] for r in responses]


def flat(text: str) -> str:
    """Output with every run of white space as one space (ansible wraps long messages)."""
    return " ".join(text.split())


def hey(client, path, seconds, per_worker_qps, workers):
    """Load from the client: (status code counts, total requests, duration in seconds)."""
    out = client.check_output(
        f"hey -z {seconds}s -q {per_worker_qps} -c {workers} https://{LB}{path}")
    counts = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    duration = float(re.search(r"Total:\s+([0-9.]+) secs", out).group(1))
    return counts, sum(counts.values()), duration


@pytest.fixture(scope="module")
def lb(hosts):
    return hosts[LB]


@pytest.fixture(scope="module")
def client(hosts):
    return hosts[CLIENT]


def ca_file(host):
    """Where the role fetched a load balancer's CA certificate on the controller (default
    nginx_tls_ca_fetch_dest: <inventory dir>-tls/<host>-ca.crt)."""
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"])
    base = inventory if inventory.is_dir() else inventory.parent
    return base.parent / f"{base.name}-tls" / f"{host}-ca.crt"


@pytest.fixture(scope="module")
def fetched_ca():
    return ca_file(LB)


@pytest.fixture(scope="module", autouse=True)
def client_trusts_the_ca(client):
    """The client trusts the CAs the role fetched, as a user's browser or SDK would."""
    blob = base64.b64encode(b"".join(ca_file(h).read_bytes() for h in LBS)).decode()
    client.check_output(f"echo {blob} | base64 -d > {CA_ON_CLIENT}")


@pytest.mark.parametrize("name", LBS)
def test_ca_certificate_fetched_to_the_controller(hosts, name):
    assert ca_file(name).read_text() == hosts[name].file("/etc/nginx/tls/ca/ca.crt").content_string


@pytest.mark.parametrize("name", LBS)
def test_private_keys_are_readable_by_root_only(hosts, name):
    for key in ("/etc/nginx/tls/selfsigned.key", "/etc/nginx/tls/ca/ca.key"):
        assert hosts[name].file(key).mode == 0o600, key
        assert hosts[name].file(key).user == "root", key


def test_configuration_files_carry_the_managed_header(lb):
    for path in ("/etc/nginx/nginx.conf", "/etc/nginx/langfuse/upstream.conf", "/etc/logrotate.d/nginx-langfuse"):
        assert "Ansible managed" in lb.file(path).content_string, path


def test_no_ocsp_stapling_for_the_local_ca(lb):
    assert "ssl_stapling" not in lb.file("/etc/nginx/nginx.conf").content_string


def test_access_log_rotation_parses(lb):
    debug = lb.run("logrotate --debug /etc/logrotate.d/nginx-langfuse")
    assert debug.rc == 0, debug.stderr
    assert "/var/log/nginx/langfuse_access.json" in debug.stderr + debug.stdout


@pytest.mark.parametrize("name", LBS)
def test_https_speaks_http2_and_sends_hsts(client, name):
    out = client.check_output(f"curl -s --http2 --cacert {CA_ON_CLIENT} -D - -o /dev/null "
                              f"-w 'version=%{{http_version}}' https://{name}/hsts-probe")
    assert out.startswith("HTTP/2 200")
    assert "strict-transport-security: max-age=63072000; includeSubDomains" in out
    assert out.endswith("version=2")


def test_modern_profile_offers_tls13_only(client):
    tls12 = client.run(f"openssl s_client -tls1_2 -connect {LB12}:443 -servername {LB12} </dev/null")
    tls13 = client.run(f"openssl s_client -tls1_3 -connect {LB12}:443 -servername {LB12} "
                       f"-CAfile {CA_ON_CLIENT} -verify_return_error </dev/null")
    assert tls12.rc != 0
    assert tls13.rc == 0 and "TLSv1.3" in tls13.stdout


def test_http_redirects_to_https(client):
    out = client.check_output(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' 'http://{LB}/a/b?c=1'")
    assert out == f"301 https://{LB}/a/b?c=1"


def test_acme_challenges_are_served_over_http(lb, client):
    token = uuid.uuid4().hex
    lb.check_output(f"mkdir -p /var/www/acme/.well-known/acme-challenge && "
                    f"echo {token}-proof > /var/www/acme/.well-known/acme-challenge/{token}")
    try:
        out = client.check_output(
            f"curl -s -w ' %{{http_code}}' http://{LB}/.well-known/acme-challenge/{token}")
        assert out == f"{token}-proof\n 200"
    finally:
        lb.run(f"rm -f /var/www/acme/.well-known/acme-challenge/{token}")


def test_certificate_names_lifetime_and_crl(lb, client):
    client.check_output(
        f"openssl s_client -connect {LB}:443 -servername {LB} -CAfile {CA_ON_CLIENT} -verify_return_error "
        "</dev/null 2>/dev/null | openssl x509 > /root/served.crt")
    text = client.check_output("openssl x509 -in /root/served.crt -noout -text")
    assert f"DNS:{LB}" in text
    assert f"IP Address:{address(lb)}" in text
    assert "id-ecPublicKey" in text and "ecdsa-with-SHA256" in text
    days = client.check_output("openssl x509 -in /root/served.crt -noout -dates")
    start, end = re.findall(r"=(.*)", days)
    lifetime = time.mktime(time.strptime(end, "%b %d %H:%M:%S %Y %Z")) - time.mktime(
        time.strptime(start, "%b %d %H:%M:%S %Y %Z"))
    assert lifetime <= 90 * 86400 + 60  # Mozilla: 90 days recommended, 366 at most
    # the CRL named in the certificate is served over HTTP and signed by the CA
    crl_url = f"http://{LB}/pki/langfuse-ca.crl"
    assert crl_url in text
    client.check_output(f"curl -sf -o /root/ca.crl {crl_url}")
    check = client.run(f"openssl crl -inform DER -in /root/ca.crl -CAfile {CA_ON_CLIENT} -noout")
    assert check.rc == 0 and "verify OK" in check.stdout + check.stderr


def test_testssl_finds_no_high_or_critical_issue_and_only_tls12_tls13(client):
    client.run("rm -f /root/testssl.json")
    client.run(f"testssl --quiet --warnings off --color 0 --add-ca {CA_ON_CLIENT} "
               f"--jsonfile /root/testssl.json https://{LB}")
    findings = json.loads(client.file("/root/testssl.json").content_string)
    bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
    assert not bad, bad
    protocols = {f["id"]: f["finding"] for f in findings
                 if f["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")}
    assert set(protocols) == {"SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"}, protocols
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert protocols[old].startswith("not offered"), protocols
    for current in ("TLS1_2", "TLS1_3"):
        assert protocols[current].startswith("offered"), protocols
    # the chain was verified against the fetched CA
    trust = [f["finding"] for f in findings if f["id"].startswith("cert_chain_of_trust")]
    assert trust and all(t.startswith("passed") for t in trust), trust


@pytest.mark.parametrize("name, profile", [(LB, "intermediate"), (LB12, "modern")])
def test_sslyze_reports_mozilla_compliance(client, name, profile):
    scan = client.run(f"/opt/sslyze/bin/sslyze --mozilla_config {profile} "
                      f"--certinfo_ca_file {CA_ON_CLIENT} {name}:443")
    assert scan.rc == 0, scan.stdout[-3000:]
    assert f"{name}:443: OK - Compliant." in scan.stdout, scan.stdout[-3000:]


def test_backend_sees_the_client_address_and_https(client):
    response = fetch(client, "/whoami", headers={"X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.66"})[0]
    headers = json.loads(response["body"])["headers"]
    client_address = address(client)
    # a client cannot forge its address: nothing trusted is in front of nginx here
    assert headers["X-Real-IP"] == client_address
    assert headers["X-Forwarded-For"] == client_address
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["Host"] == LB


def test_no_429_below_the_limit(client):
    time.sleep(BURST / RATE + 1)  # an empty bucket
    counts, total, _duration = hey(client, "/rate-limited/below", seconds=4, per_worker_qps=RATE // 2, workers=1)
    assert total >= 10 and counts == {200: total}, counts


def test_429_share_matches_rate_and_burst_at_ten_times_the_limit(client):
    time.sleep(BURST / RATE + 1)
    counts, total, duration = hey(client, "/rate-limited/over", seconds=5, per_worker_qps=RATE, workers=10)
    assert set(counts) <= {200, 429}, counts
    assert total / duration >= 5 * RATE, f"the load generator reached only {total / duration:.0f} r/s"
    allowed = min(total, BURST + 1 + RATE * duration)
    expected = (total - allowed) / total
    actual = counts.get(429, 0) / total
    assert abs(actual - expected) <= 0.10, (counts, duration, expected, actual)


def test_429_carries_retry_after_and_a_json_body(client):
    time.sleep(BURST / RATE + 1)
    responses = fetch(client, "/rate-limited/body", n=BURST + 15)
    limited = [r for r in responses if r["status"] == 429]
    assert limited, [r["status"] for r in responses]
    first = limited[0]
    assert first["headers"]["retry-after"] == "1"
    assert first["headers"]["content-type"].startswith("application/json")
    assert "strict-transport-security" in first["headers"]
    body = json.loads(first["body"])
    assert body["error"] == "rate_limited" and body["retry_after"] == 1


def test_ingestion_is_limited_per_public_key(client):
    def basic(public_key):
        raw = f"{public_key}:sk-lf-{uuid.uuid4()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    key_a, key_b = f"pk-lf-{uuid.uuid4()}", f"pk-lf-{uuid.uuid4()}"
    # 2 r/m with burst 1: two requests pass, the third is limited - also with another secret,
    # since only the public key counts
    first = fetch(client, "/api/public/ingestion", n=2, headers=basic(key_a), method="POST")
    third = fetch(client, "/api/public/ingestion", headers=basic(key_a), method="POST")
    assert [r["status"] for r in first + third] == [200, 200, 429]
    # another key from the same client has a bucket of its own
    assert fetch(client, "/api/public/ingestion", headers=basic(key_b), method="POST")[0]["status"] == 200


def test_server_sent_events_are_not_buffered(client):
    timing = client_py(client, """
start = time.monotonic()
sock = CTX.wrap_socket(socket.create_connection(("nginx-lb", 443), timeout=30), server_hostname="nginx-lb")
sock.sendall(b"GET /sse HTTP/1.1\\r\\nHost: nginx-lb\\r\\nConnection: close\\r\\n\\r\\n")
data, first = b"", None
while True:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
    if first is None and b"data: first" in data:
        first = time.monotonic() - start
print(json.dumps({"first": first, "total": time.monotonic() - start, "second": b"data: second" in data}))
""")
    assert timing["second"] and timing["total"] >= 3, timing
    assert timing["first"] is not None and timing["first"] < 2, timing


def test_every_get_succeeds_with_one_backend_stopped(hosts, client):
    app1 = hosts[APP1]
    app1.check_output("systemctl stop langfuse-standin")
    try:
        responses = fetch(client, "/failover", n=200)
        assert [r["status"] for r in responses] == [200] * 200
        assert set(hostnames(responses)) == {APP2}
    finally:
        app1.check_output("systemctl start langfuse-standin")
    time.sleep(11)  # fail_timeout: nginx tries the restarted server again


@pytest.mark.parametrize("name", LBS)
def test_requests_reach_both_backends(client, name):
    assert set(hostnames(fetch(client, "/balance", n=20, host=name))) == {APP1, APP2}


def test_drain_sends_every_request_to_the_other_backend(lb, client):
    conf_before = lb.file("/etc/nginx/nginx.conf").content_string
    drained = run_playbook("drain.yml", "-e", json.dumps({"drain_host": APP1}))
    try:
        assert drained.returncode == 0, drained.stdout[-3000:]
        assert f"down;  # {APP1} (drained)" in lb.file("/etc/nginx/langfuse/upstream.conf").content_string
        for name in LBS:
            assert set(hostnames(fetch(client, "/drained", n=20, host=name))) == {APP2}
        # the entry point touches the upstream only
        assert lb.file("/etc/nginx/nginx.conf").content_string == conf_before
    finally:
        undrained = run_playbook("drain.yml", "-e", json.dumps({"drain_host": ""}))
    assert undrained.returncode == 0, undrained.stdout[-3000:]
    for name in LBS:
        assert set(hostnames(fetch(client, "/undrained", n=20, host=name))) == {APP1, APP2}


def test_draining_every_host_is_refused(lb):
    before = lb.file("/etc/nginx/langfuse/upstream.conf").content_string
    run = run_playbook("converge.yml", "-e", json.dumps({"nginx_drained_hosts": [APP1, APP2]}))
    assert run.returncode != 0
    assert "leave at least one of them in service" in flat(run.stdout), run.stdout[-3000:]
    assert lb.file("/etc/nginx/langfuse/upstream.conf").content_string == before


def test_draining_a_host_that_is_not_a_backend_is_refused(lb):
    before = lb.file("/etc/nginx/langfuse/upstream.conf").content_string
    run = run_playbook("drain.yml", "-e", json.dumps({"drain_host": "nginx-client"}))
    assert run.returncode != 0
    assert "is not a host of the upstream group" in flat(run.stdout), run.stdout[-3000:]
    assert lb.file("/etc/nginx/langfuse/upstream.conf").content_string == before


def test_stub_status_answers_locally_only(lb, client):
    assert "Active connections:" in lb.check_output("curl -s http://127.0.0.1:8080/stub_status")
    assert not can_connect(client, address(lb), 8080)
    assert can_connect(client, address(lb), 443) and can_connect(client, address(lb), 80)
    dropin = lb.file("/etc/nftables.d/llmops/nginx.nft").content_string
    assert "dport 443" in dropin and "dport 80" in dropin


def test_access_log_is_json_without_credentials(lb, client):
    marker = uuid.uuid4().hex
    credential = base64.b64encode(f"pk-lf-{uuid.uuid4()}:sk-lf-{marker}".encode()).decode()
    fetch(client, f"/logged/{marker}", headers={"Authorization": f"Basic {credential}"})
    time.sleep(1)
    lines = lb.check_output("tail -n 200 /var/log/nginx/langfuse_access.json").splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    mine = [e for e in entries if e["uri"] == f"/logged/{marker}"]
    assert len(mine) == 1, mine
    assert mine[0]["status"] == 200 and mine[0]["remote_addr"] == address(client)
    assert mine[0]["upstream_addr"] and mine[0]["request_id"]
    assert credential not in "\n".join(lines)


def test_broken_directive_fails_the_run_and_the_old_config_keeps_serving(lb, client):
    before = lb.file("/etc/nginx/nginx.conf").content_string
    extra = json.dumps({"nginx_extra_server_directives": ["llmops_bogus_directive on;"]})
    run = run_playbook("converge.yml", "--limit", LB, "-e", extra)
    assert run.returncode != 0
    assert 'unknown directive "llmops_bogus_directive"' in flat(run.stdout), run.stdout[-3000:]
    assert lb.file("/etc/nginx/nginx.conf").content_string == before
    assert lb.run("nginx -t").rc == 0
    assert fetch(client, "/still-serving")[0]["status"] == 200


def test_check_mode_is_clean():
    run = run_playbook("converge.yml", "--check", "--diff", "--limit", "langfuse_lb")
    assert run.returncode == 0, run.stdout[-3000:]
    counters = recap(run.stdout)
    assert counters and all(c["changed"] == 0 for c in counters.values()), counters


# ------------------------------------------------------------- other settings of nginx-lb
@pytest.fixture(scope="module")
def restore_scenario(lb, fetched_ca):
    """Runs the scenario's converge on the load balancer when the module ends: back to the
    scenario's settings and the self-signed certificate. The fetched CA file does not change on
    that run."""
    yield
    mtime = fetched_ca.stat().st_mtime
    run = run_playbook("converge.yml", "--limit", LB)
    assert run.returncode == 0, run.stdout[-3000:]
    assert fetched_ca.stat().st_mtime == mtime
    assert lb.file("/etc/nginx/nginx.conf").contains("selfsigned.crt")


def test_real_ip_from_a_trusted_proxy(lb, client, restore_scenario):
    """The client stands in for a cloud load balancer (nginx_real_ip_trusted: [client])."""
    run = run_playbook("converge.yml", "--limit", LB, "-e", json.dumps({"nginx_real_ip_trusted": ["client"]}))
    assert run.returncode == 0, run.stdout[-3000:]
    marker = uuid.uuid4().hex
    response = fetch(client, f"/behind-proxy/{marker}", headers={"X-Forwarded-For": "198.51.100.7"})[0]
    headers = json.loads(response["body"])["headers"]
    assert headers["X-Real-IP"] == "198.51.100.7"
    assert headers["X-Forwarded-For"] == f"198.51.100.7, {address(client)}"
    time.sleep(1)
    logged = [json.loads(line) for line in lb.check_output(
        "tail -n 50 /var/log/nginx/langfuse_access.json").splitlines()]
    assert [e["remote_addr"] for e in logged if e["uri"] == f"/behind-proxy/{marker}"] == ["198.51.100.7"]
    # any other peer (here the load balancer itself) is no trusted proxy: its header is ignored
    direct = lb.check_output(
        f"curl -s --cacert /etc/nginx/tls/ca/ca.crt -H 'X-Forwarded-For: 198.51.100.8' https://{LB}/direct")
    assert json.loads(direct)["headers"]["X-Real-IP"] != "198.51.100.8"


def served_certificate(client):
    """The certificate the load balancer serves (PEM; also left in /root/served.crt)."""
    return client.check_output(
        f"openssl s_client -connect {LB}:443 -servername {LB} </dev/null 2>/dev/null "
        "| openssl x509 | tee /root/served.crt")


def test_files_source_serves_the_supplied_certificate_and_never_prints_the_key(
        lb, client, restore_scenario):
    """A certificate from another CA, with its chain: served as supplied, OCSP stapling on, and
    the key never in the output of a verbose --diff run."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=60))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name(LB)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(LB)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"cert": Path(tmp, "lb.crt"), "key": Path(tmp, "lb.key"), "chain": Path(tmp, "chain.pem")}
        paths["cert"].write_bytes(cert.public_bytes(pem))
        paths["key"].write_bytes(key_pem)
        paths["chain"].write_bytes(ca.public_bytes(pem))
        extra = json.dumps({"nginx_tls_source": "files", "nginx_tls_cert_src": str(paths["cert"]),
                            "nginx_tls_key_src": str(paths["key"]), "nginx_tls_chain_src": str(paths["chain"])})
        run = run_playbook("converge.yml", "--limit", LB, "-v", "--diff", "-e", extra)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "PRIVATE KEY" not in run.stdout
    assert key_pem.decode().splitlines()[1] not in run.stdout
    assert served_certificate(client) == cert.public_bytes(pem).decode().strip()
    assert lb.file("/etc/nginx/tls/langfuse.key").mode == 0o600
    conf = lb.file("/etc/nginx/nginx.conf").content_string
    assert "ssl_stapling on;" in conf and "ssl_trusted_certificate /etc/nginx/tls/langfuse-chain.pem;" in conf


def test_acme_configuration_renders_with_a_temporary_certificate(lb, client, restore_scenario):
    """certbot cannot reach an ACME CA from here: only the configuration is tested (the
    temporary certificate, the challenge webroot, the renewal hook)."""
    extra = json.dumps({"nginx_tls_source": "acme", "nginx_acme_email": "ops@example.org",
                        "nginx_acme_request": False})
    run = run_playbook("converge.yml", "--limit", LB, "-e", extra)
    assert run.returncode == 0, run.stdout[-3000:]
    assert lb.run("nginx -t").rc == 0
    assert lb.file("/etc/nginx/nginx.conf").contains("acme-fallback.crt")
    served_certificate(client)
    subject = client.check_output("openssl x509 -in /root/served.crt -noout -subject -issuer")
    assert subject.count(f"CN={LB}") == 2  # self-signed for the server name
    assert lb.package("certbot").is_installed
    assert lb.file("/etc/letsencrypt/renewal-hooks/deploy/llmops-nginx-reload.sh").mode == 0o755
    token = uuid.uuid4().hex
    lb.check_output(f"echo {token} > /var/www/acme/.well-known/acme-challenge/{token}")
    try:
        assert client.check_output(f"curl -s http://{LB}/.well-known/acme-challenge/{token}") == token
    finally:
        lb.run(f"rm -f /var/www/acme/.well-known/acme-challenge/{token}")
