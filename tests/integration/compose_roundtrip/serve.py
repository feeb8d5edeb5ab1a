"""A unit of the compose round trip: answers HTTP on a port, or only listens, or only runs.

serve.py http PORT [DATA_DIR]   GET / answers 200 (and writes DATA_DIR/hits when given)
serve.py tcp PORT               accepts connections and closes them (a port, no protocol)
serve.py idle                   runs until stopped
"""

import http.server
import os
import signal
import socket
import sys
import time


def http_serve(port: int, data: str | None) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if data:
                with open(os.path.join(data, "hits"), "a", encoding="utf-8") as hits:
                    hits.write("1\n")
            body = f"{os.environ.get('GREETING', 'hello')}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def tcp_serve(port: int) -> None:
    server = socket.create_server(("0.0.0.0", port))
    while True:
        conn, _addr = server.accept()
        conn.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mode = sys.argv[1]
    if mode == "http":
        http_serve(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    elif mode == "tcp":
        tcp_serve(int(sys.argv[2]))
    else:
        while True:
            time.sleep(3600)
