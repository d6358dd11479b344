"""llmops.langfuse.redis_command against a small RESP server in a thread (plain and TLS):
authentication, replies, errors, unreachable servers and the read-only list of check mode."""
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    """The module, imported the way Ansible imports it (ansible_collections.llmops.langfuse)."""
    top = tmp_path_factory.mktemp("collections")
    (top / "ansible_collections" / "llmops").mkdir(parents=True)
    (top / "ansible_collections" / "llmops" / "langfuse").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(top))
    import importlib

    yield importlib.import_module("ansible_collections.llmops.langfuse.plugins.modules.redis_command")
    sys.path.remove(str(top))


USERS = {"admin": "s3cret-Admin-Password"}


class Handler(socketserver.StreamRequestHandler):
    """Enough of Redis: AUTH user pass, PING, ACL LOAD, LLEN; NOAUTH before AUTH."""

    def read_command(self):
        header = self.rfile.readline()
        if not header:
            return None
        args = []
        for _arg in range(int(header[1:])):
            size = int(self.rfile.readline()[1:])
            args.append(self.rfile.read(size + 2)[:-2].decode())
        return args

    def handle(self):
        authed = False
        while True:
            args = self.read_command()
            if args is None:
                return
            name = args[0].upper()
            if name == "AUTH":
                authed = len(args) == 3 and USERS.get(args[1]) == args[2]
                self.wfile.write(b"+OK\r\n" if authed else b"-WRONGPASS invalid username-password pair\r\n")
            elif not authed:
                self.wfile.write(b"-NOAUTH Authentication required.\r\n")
            elif name == "PING":
                self.wfile.write(b"+PONG\r\n")
            elif name == "LLEN":
                self.wfile.write(b":500\r\n")
            elif name == "ROLE":
                self.wfile.write(b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")
            else:
                self.wfile.write(b"-ERR unknown command\r\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


@pytest.fixture(scope="module")
def plain_server():
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """The same server behind TLS, with a self-signed certificate for 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "server.crt", tmp / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=redis-test",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))

    class TLSServer(Server):
        def get_request(self):
            sock, addr = super().get_request()
            return context.wrap_socket(sock, server_side=True), addr

    server = TLSServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], str(cert)
    server.shutdown()


def params(port, **kw):
    base = {"host": "127.0.0.1", "port": port, "user": "admin", "password": USERS["admin"], "timeout": 2.0,
            "tls": False, "tls_ca_file": None, "tls_cert_file": None, "tls_key_file": None,
            "tls_server_name": None, "command": ["PING"]}
    base.update(kw)
    return base


def test_ping_with_the_right_password(module, plain_server):
    assert module.run_command(params(plain_server)) == {"status": "ok", "reply": "PONG", "msg": ""}


def test_integer_and_array_replies(module, plain_server):
    assert module.run_command(params(plain_server, command=["LLEN", "bull:ingestion-queue:wait"]))["reply"] == 500
    assert module.run_command(params(plain_server, command=["ROLE"]))["reply"] == ["master", 0, []]


def test_wrong_password_is_an_error_naming_wrongpass(module, plain_server):
    result = module.run_command(params(plain_server, password="wrong-password-0000"))
    assert result["status"] == "error" and result["msg"].startswith("WRONGPASS")


def test_no_password_gets_noauth(module, plain_server):
    result = module.run_command(params(plain_server, password=None))
    assert result["status"] == "error" and result["msg"].startswith("NOAUTH")


def test_a_closed_port_is_unreachable(module):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = module.run_command(params(port))
    assert result["status"] == "unreachable" and "cannot connect" in result["msg"]


def test_tls_with_the_ca(module, tls_server):
    port, ca = tls_server
    assert module.run_command(params(port, tls=True, tls_ca_file=ca))["reply"] == "PONG"


def test_tls_without_the_ca_fails_the_handshake(module, tls_server):
    port, _ca = tls_server
    result = module.run_command(params(port, tls=True))
    assert result["status"] == "unreachable" and "TLS handshake" in result["msg"]


def test_plaintext_against_a_tls_port_gets_no_reply(module, tls_server):
    port, _ca = tls_server
    assert module.run_command(params(port))["status"] == "unreachable"


@pytest.mark.parametrize("command, read_only", [
    (["PING"], True), (["info", "replication"], True), (["SENTINEL", "get-master-addr-by-name", "x"], True),
    (["LLEN", "bull:x:wait"], True), (["ACL", "LOAD"], False), (["CONFIG", "SET", "x", "y"], False),
    (["FLUSHALL"], False), (["SENTINEL", "FAILOVER", "x"], False),
])
def test_check_mode_sends_only_read_only_commands(module, command, read_only):
    assert module.is_read_only(command) is read_only
