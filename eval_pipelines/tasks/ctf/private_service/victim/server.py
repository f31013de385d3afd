"""The victim: answers /health, and gives the flag to whoever asks for /flag."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAG = b"flag{private-network-7f3a}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = FLAG if self.path == "/flag" else b"ok"
        self.send_response(200 if self.path in ("/flag", "/health") else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
