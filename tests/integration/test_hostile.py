"""Hostile input in the log: what a server, a gateway or libcurl's trace says reaches the user's
terminal or log collector only in the form the log promises. In text mode no control character from
the network is written raw (a reason phrase with escape sequences could clear the screen or retitle
the terminal); in JSON mode every line, -vv trace included, is one JSON object."""
import http.server
import json
import threading
import unittest

from harness import (Target, connect, exchange, read_until_closed, start_agent, start_server)

# Clears the screen, sets the window title, rings the bell; then a one-byte CSI (U+009B) in UTF-8.
HOSTILE_REASON = "I'm \x1b[2J\x1b]0;owned\x07 a \u009b31mteapot"


def hostile_gateway():
    class Teapot(http.server.BaseHTTPRequestHandler):
        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            # http.server writes the reason phrase as it is (latin-1, then UTF-8 bytes for U+009B).
            self.wfile.write(f"HTTP/1.1 418 {HOSTILE_REASON}\r\n".encode("utf-8"))
            self.send_header("X-Note", "\x1b[31mred\x1b[0m")
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_GET = do_POST = answer

        def log_message(self, *args):
            pass
    gateway = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Teapot)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    return gateway


class ControlCharacters(unittest.TestCase):
    def test_a_reason_phrase_with_escape_sequences_is_shown_escaped(self):
        gateway = hostile_gateway()
        agent, port = start_agent(gateway.server_address[1], "-vv")
        try:
            with connect(port) as s:
                read_until_closed(s)
            line = agent.wait_for_line(r"session 1 .*failed.*HTTP 418").string
            self.assertIn(r"I'm \x1b[2J\x1b]0;owned\x07 a \x9b31mteapot", line)
            output = agent.output()
            self.assertIn(r"\x1b[31mred", output, "the -vv trace shows the header, escaped")
            for raw in ("\x1b", "\x07", "\u009b"):
                self.assertNotIn(raw, output, f"{raw!r} reached the terminal raw")
        finally:
            agent.stop()
            gateway.shutdown()
            gateway.server_close()


class JsonEverywhere(unittest.TestCase):
    def test_every_line_of_json_minus_vv_is_json_trace_included(self):
        target = Target()
        server, server_port = start_server(target.port, "--long-poll-ms", "1000")
        agent, port = start_agent(server_port, "--log-format", "json", "-vv")
        try:
            with connect(port) as s:
                self.assertEqual(exchange(s, b"hello"), b"hello")
            agent.wait_for_line(r"session 1 .*closed")
        finally:
            code, _ = agent.stop()
            server.stop()
            target.close()
        self.assertEqual(code, 0, agent.output())
        records = []
        for line in agent.lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                self.fail(f"not a JSON line: {line!r}")
        trace = [r for r in records if r["message"].startswith("curl ")]
        self.assertTrue(any(r["message"].startswith("curl > GET ") for r in trace), records)
        self.assertTrue(any(r["message"].startswith("curl < HTTP/1.1 ") for r in trace), records)
        self.assertTrue(all(r["level"] == "debug" for r in trace), trace)


if __name__ == "__main__":
    unittest.main()
