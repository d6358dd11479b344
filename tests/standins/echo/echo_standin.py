"""Stand-in for langfuse-web behind nginx (tests only; the nginx scenario's backends): answers every
request with JSON - its host name, the request line, the peer and the headers it received -
and streams two server-sent events three seconds apart on /sse (nginx must not buffer them)."""
import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/sse"):
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in ("first", "second"):
                self.wfile.write(f"data: {event}\n\n".encode())
                self.wfile.flush()
                time.sleep(3)
            return
        body = json.dumps({
            "hostname": socket.gethostname(),
            "method": self.command,
            "path": self.path,
            "peer": self.client_address[0],
            "headers": dict(self.headers.items()),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = handle_one

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", 3000), Echo).serve_forever()
