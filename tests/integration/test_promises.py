"""What --help, the README and the man page promise, each shown end to end with the real agent:
headers that reach the server, a secret under another header name, a gateway's 401, the warning for
a secret sent over plain http, a server whose x-seq starts again, the live status line only where a
person watches, and a second Ctrl-C."""
import http.server
import os
import pty
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import (Process, Target, connect, exchange, read_until_closed, start_agent, start_server, wait_until)


def secret_file(value):
    f = tempfile.NamedTemporaryFile("w", suffix=".secret", delete=False)
    f.write(value + "\n")
    f.close()
    return f.name


class Headers(unittest.TestCase):
    def setUp(self):
        self.target = Target()

    def tearDown(self):
        self.target.close()

    def test_headers_given_with_H_reach_the_server_on_every_request(self):
        server, server_port = start_server(self.target.port, "--log-header", "X-Trace", "--log-header", "X-Team")
        agent, port = start_agent(server_port, "-H", "X-Trace: abc-123", "-H", "X-Team: orders")
        try:
            with connect(port) as s:
                self.assertEqual(exchange(s, b"hello"), b"hello")
            agent.wait_for_line(r"session 1 .*closed after")
            for method in ("GET", "POST"):
                self.assertGreater(server.count(rf"{method} header x-trace: abc-123$"), 0, server.output())
                self.assertGreater(server.count(rf"{method} header x-team: orders$"), 0, server.output())
            self.assertEqual(server.count(r"header x-trace: \(none\)"), 0, server.output())
            self.assertNotIn("abc-123", agent.output(), "header values are never logged")
        finally:
            agent.stop()
            server.stop(signal.SIGKILL)

    def test_headers_from_a_file_reach_the_server_and_never_show_in_ps(self):
        path = secret_file("# the gateway's login\nAuthorization: Bearer token-from-file")
        server, server_port = start_server(self.target.port, "--log-header", "Authorization")
        agent, port = start_agent(server_port, "-H", f"@{path}", "-H", "X-Api-Key: key-on-the-line")
        try:
            with connect(port) as s:
                self.assertEqual(exchange(s, b"hello"), b"hello")
            agent.wait_for_line(r"session 1 .*closed after")
            self.assertGreater(server.count(r"POST header authorization: Bearer token-from-file$"), 0, server.output())
            with open(f"/proc/{agent.proc.pid}/cmdline", "rb") as f:
                self.assertNotIn(b"token-from-file", f.read())
            # The one given on the command line is in ps, and the agent says so (masked).
            agent.wait_for_line(r"warning: -H X-Api-Key: \*\*\*: its value is visible to every user of this machine "
                                r"\(ps, /proc\); put the header in a file and give -H @FILE")
            self.assertNotIn("key-on-the-line", agent.output())
            self.assertEqual(agent.count(r"Authorization.*visible"), 0, agent.output())
        finally:
            agent.stop()
            server.stop(signal.SIGKILL)
            os.unlink(path)

    def test_each_forward_of_a_config_file_sends_its_own_headers(self):
        other = Target()
        first, first_port = start_server(self.target.port, "--log-header", "Authorization")
        second, second_port = start_server(other.port, "--log-header", "Authorization")
        path = harness.ENDPOINT_PATH.replace("'", "")
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
            config.write(f'header = "Authorization: Bearer global"\n\n'
                         f'[[forward]]\nlisten = "127.0.0.1:0"\nurl = "http://127.0.0.1:{first_port}{path}"\n\n'
                         f'[[forward]]\nlisten = "127.0.0.1:0"\nurl = "http://127.0.0.1:{second_port}{path}"\n'
                         f'header = "Authorization: Bearer for-billing"\n')
        agent = Process([harness.AGENT, "--config", config.name])
        try:
            ports = {}
            for server_port in (first_port, second_port):
                m = agent.wait_for_line(rf"listening on 127\.0\.0\.1:(\d+), tunnelling to http://127\.0\.0\.1:{server_port}/")
                ports[server_port] = int(m.group(1))
            for server_port in (first_port, second_port):
                with connect(ports[server_port]) as s:
                    self.assertEqual(exchange(s, b"which one"), b"which one")
            wait_until(lambda: agent.count(r"session \d+#1 .*closed after") == 2, 20, "both sessions to end", agent.cond)
            self.assertGreater(first.count(r"header authorization: Bearer global$"), 0, first.output())
            self.assertEqual(first.count(r"for-billing"), 0, first.output())
            self.assertGreater(second.count(r"header authorization: Bearer for-billing$"), 0, second.output())
            self.assertEqual(second.count(r"Bearer global"), 0, second.output())
        finally:
            agent.stop()
            first.stop(signal.SIGKILL)
            second.stop(signal.SIGKILL)
            other.close()
            os.unlink(config.name)


class SecretHeader(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        self.secret = secret_file("gate-secret-77")
        self.server, self.server_port = start_server(self.target.port, "--secret-header", "X-Gate-Key",
                                                     "--secret-file", self.secret)

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.target.close()
        os.unlink(self.secret)

    def test_the_secret_goes_in_the_header_named_by_secret_header(self):
        agent, port = start_agent(self.server_port, "--secret-header", "X-Gate-Key", "--secret-file", self.secret,
                                  env={"TUNNEL_AGENT_SECRET": ""})
        try:
            with connect(port) as s:
                self.assertEqual(exchange(s, b"let me in"), b"let me in")
            agent.wait_for_line(r"session 1 .*closed after")
        finally:
            agent.stop()
        # The same secret under the default header name is refused: the option is what made it work.
        agent, port = start_agent(self.server_port, "--secret-file", self.secret, env={"TUNNEL_AGENT_SECRET": ""})
        try:
            with connect(port) as s:
                read_until_closed(s)
            self.assertIn("the server refused the secret (403", agent.wait_for_line(r"session 1 .*failed").string)
            self.assertNotIn("gate-secret-77", agent.output())
        finally:
            agent.stop()

    def test_a_secret_over_plain_http_is_warned_about_once_per_forward(self):
        agent, _ = start_agent(self.server_port, "--secret-header", "X-Gate-Key", "--secret-file", self.secret,
                               env={"TUNNEL_AGENT_SECRET": ""})
        try:
            agent.wait_for_line(r"warning: the secret travels unencrypted over http:// to http://127\.0\.0\.1:"
                                rf"{self.server_port}/")
            self.assertEqual(agent.count(r"travels unencrypted"), 1)
            self.assertNotIn("gate-secret-77", agent.output())
        finally:
            agent.stop()
        agent, _ = start_agent(self.server_port, env={"TUNNEL_AGENT_SECRET": ""})
        try:
            agent.wait_for_line(r"listening on")
            self.assertEqual(agent.count(r"travels unencrypted"), 0, "no secret, no warning")
        finally:
            agent.stop()


class Gateway401(unittest.TestCase):
    def test_a_401_from_a_gateway_ends_the_session_naming_the_secret(self):
        class Refuse(http.server.BaseHTTPRequestHandler):
            def refuse(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(401, "Unauthorized")
                self.send_header("WWW-Authenticate", 'Bearer realm="gateway"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            do_GET = do_POST = refuse

            def log_message(self, *args):
                pass
        gateway = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
        threading.Thread(target=gateway.serve_forever, daemon=True).start()
        agent, port = start_agent(gateway.server_address[1], env={"TUNNEL_AGENT_SECRET": ""})
        try:
            with connect(port) as s:
                read_until_closed(s)
            line = agent.wait_for_line(r"session 1 .*failed").string
            self.assertIn("the server refused the secret (401 Unauthorized)", line)
            self.assertIn("no secret was given", line)
        finally:
            agent.stop()
            gateway.shutdown()
            gateway.server_close()


class ServerSeqRestart(unittest.TestCase):
    def test_a_server_whose_x_seq_starts_again_at_1_ends_the_session_saying_so(self):
        target = Target()
        server, server_port = start_server(target.port, "--fault", "seq-restart@3")
        agent, port = start_agent(server_port)
        try:
            got = b""
            with connect(port) as s:
                for i in range(6):
                    message = f"message {i};".encode()
                    try:
                        s.sendall(message)
                        got += s.recv(100)
                    except OSError:
                        break
                    if not got.endswith(message):
                        break
            line = agent.wait_for_line(r"session 1 .*failed after").string
            self.assertIn("the server's x-seq went back to 1", line)
            self.assertEqual(server.count(r"fault: seq-restart on payload 3"), 1)
            # Only the stream's own bytes arrived, in order: the first two answers.
            self.assertEqual(got, b"message 0;message 1;")
        finally:
            agent.stop()
            server.stop(signal.SIGKILL)
            target.close()


class StatusLine(unittest.TestCase):
    """The live status line is drawn under the log only on a terminal, for text logs, without --stdio
    and without --no-status-line. The agent runs on a pseudo-terminal here."""

    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port)

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.target.close()

    def run_on_terminal(self, *args, stdio=False):
        """Runs the agent with stderr on a pseudo-terminal; returns what the terminal showed."""
        master, slave = pty.openpty()
        url = f"http://127.0.0.1:{self.server_port}{harness.ENDPOINT_PATH}"
        env = dict(os.environ, TERM="xterm", http_proxy="")
        if stdio:
            proc = subprocess.Popen([harness.AGENT, "--stdio", *args, url], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=slave, env=env)
        else:
            proc = subprocess.Popen([harness.AGENT, "--listen", "127.0.0.1:0", *args, url],
                                    stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        shown = bytearray()

        def read_until(pred, timeout):
            deadline = time.monotonic() + timeout
            while not pred() and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        shown.extend(os.read(master, 65536))
                    except OSError:
                        return
        try:
            if stdio:
                proc.stdin.write(b"over stdio")
                proc.stdin.flush()
                echoed = proc.stdout.read(len(b"over stdio"))
                self.assertEqual(echoed, b"over stdio")
                read_until(lambda: b"connected to the target" in shown, 10)
                # Long enough for a live line to have been drawn (it is redrawn every second).
                read_until(lambda: b"session 1 connected" in shown, 2.5)
                proc.stdin.close()
            else:
                read_until(lambda: b"listening on" in shown, 10)
                port = int(shown.split(b"listening on 127.0.0.1:")[1].split(b",")[0])
                with connect(port) as s:
                    self.assertEqual(exchange(s, b"on a terminal"), b"on a terminal")
                    read_until(lambda: b"session 1 connected" in shown or b"session 1 debugger" in shown, 2.5)
                proc.send_signal(signal.SIGINT)
            proc.wait(10)
            read_until(lambda: False, 0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None and not stream.closed:
                    stream.close()
            os.close(master)
        return shown.decode("utf-8", "replace")

    def test_a_terminal_shows_the_live_line(self):
        shown = self.run_on_terminal()
        self.assertRegex(shown, r"session 1 connected \d+s  up \d+ B  down \d+ B  rtt \d+ ms  127\.0", shown)

    def test_no_status_line_json_logs_and_stdio_draw_none(self):
        # --stdio logs warnings only unless -v: -v, so that the log is there to be looked at.
        for args, stdio in ((("--no-status-line",), False), (("--log-format", "json"), False), (("-v",), True)):
            with self.subTest(args=args, stdio=stdio):
                shown = self.run_on_terminal(*args, stdio=stdio)
                self.assertIn("session 1", shown)  # the log itself is there
                self.assertNotRegex(shown, r"-> 127\.0\.0\.1:\d+  (session|idle)", shown)


class SecondSignal(unittest.TestCase):
    def test_sigterm_with_a_live_session_ends_it_within_2_s(self):
        target = Target()
        server, server_port = start_server(target.port)
        agent, port = start_agent(server_port)
        try:
            with connect(port) as s:
                self.assertEqual(exchange(s, b"busy"), b"busy")
                code, took = agent.stop(signal.SIGTERM)
                self.assertEqual(code, 0, agent.output())
                self.assertLess(took, 2.5, "SIGTERM with a live session: out within 2 s")
                agent.wait_for_line(r"session 1 .*closed after .*: the agent is stopping")
                self.assertEqual(read_until_closed(s), b"")
        finally:
            server.stop(signal.SIGKILL)
            target.close()

    def test_a_second_signal_while_stopping_exits_at_once(self):
        # A server that takes requests and never answers: stopping waits for the x-disconnect's answer
        # (at most 0.7 s); a second signal meanwhile ends the agent at once.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        held = []
        threading.Thread(target=lambda: [held.append(hole.accept()) for _ in iter(int, 1)], daemon=True).start()
        agent, port = start_agent(hole.getsockname()[1], "-v")
        try:
            with connect(port):
                agent.wait_for_line(r"session 1: opened")
                wait_until(lambda: len(held) > 0, 10, "the agent's first request")
                # Two different signals, back to back (two of the same may merge into one): the
                # first starts the stop, the second, well within its 0.7 s, ends the agent.
                agent.proc.send_signal(signal.SIGINT)
                agent.proc.send_signal(signal.SIGTERM)
                agent.proc.wait(5)
            self.assertEqual(agent.proc.returncode, 130, agent.output())
            agent.wait_for_line(r"stopping \((Ctrl-C|SIGTERM)\)")
            agent.wait_for_line(r"second (Ctrl-C|SIGTERM): exiting at once")
        finally:
            agent.stop(signal.SIGKILL)
            hole.close()

