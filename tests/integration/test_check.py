"""tunnel-agent check URL: one line per step, the right verdict for each failure it names, exit 0
only when a debugger could attach, and the server left as it was found."""
import http.server
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

from harness import AGENT, ENDPOINT_PATH, Target, connect, exchange, dead_port, start_agent, start_server, wait_until
from proxies import Squid, Tinyproxy
from tls import Nghttpx, Pki


def check(url, *args, env=None):
    full_env = dict(os.environ, http_proxy="", https_proxy="", all_proxy="", HTTPS_PROXY="", ALL_PROXY="")
    full_env.update(env or {})
    run = subprocess.run([AGENT, "check", url, *args], capture_output=True, text=True, timeout=60, env=full_env)
    return run.returncode, run.stdout


class Portal(http.server.BaseHTTPRequestHandler):
    """Something else in front of the app: a login page, or a redirect to one."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "https://sso.example/login?next=/debug")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<html><head><title>Sign in - Corp SSO</title></head><body>login</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Check(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        self.secret_dir = tempfile.mkdtemp()
        self.secret_file = os.path.join(self.secret_dir, "secret")
        with open(self.secret_file, "w") as f:
            f.write("right\n")
        self.server, port = start_server(self.target.port, "--long-poll-ms", "1000", "--secret-file", self.secret_file)
        self.url = f"http://127.0.0.1:{port}{ENDPOINT_PATH}"

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.target.close()

    def test_a_working_tunnel_passes_and_the_probe_leaves_the_target_closed(self):
        code, out = check(self.url, env={"TUNNEL_AGENT_SECRET": "right"})
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"(?m)^ok +name +127\.0\.0\.1 is 127\.0\.0\.1$")
        self.assertRegex(out, r"(?m)^ok +tunnel +the endpoint answered the probe as a tunnel server does \(410 Gone\)")
        self.assertIn("verdict: a debugger can attach", out)
        # The probe opened the target connection, as a debugger would, and closed it again.
        self.target.wait_opened(1)
        self.target.wait_closed(1)
        self.server.wait_for_line(r"target connection 1 closed: x-disconnect")

    def test_each_failure_gets_its_verdict_and_exit_code_1(self):
        cases = [
            ("bad secret", self.url, {"TUNNEL_AGENT_SECRET": "wrong"}, (),
             r"FAIL +tunnel +the server refused the secret \(403 Forbidden\): check the secret given by TUNNEL_AGENT_SECRET"),
            ("no secret", self.url, {"TUNNEL_AGENT_SECRET": ""}, (), r"FAIL +tunnel +the server refused the secret .*no secret"),
            ("wrong path", self.url.replace("debug", "other"), {"TUNNEL_AGENT_SECRET": "right"}, (),
             r"FAIL +tunnel +nothing at this path \(404 Not Found\)"),
            ("unknown host", "http://no-such-host.invalid/x", {}, (), r"FAIL +name +cannot resolve no-such-host\.invalid"),
        ]
        for name, url, env, args, verdict in cases:
            with self.subTest(name):
                code, out = check(url, *args, env=env)
                self.assertEqual(code, 1, out)
                self.assertRegex(out, verdict)
                self.assertIn("verdict: a debugger cannot attach yet", out)

    def test_target_not_running_503(self):
        server, port = start_server(self.target.port, "--unavailable")
        try:
            code, out = check(f"http://127.0.0.1:{port}{ENDPOINT_PATH}")
        finally:
            server.stop(signal.SIGKILL)
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"FAIL +tunnel +the server says the target is not running \(503\): start the JVM with "
                              r"-agentlib:jdwp")

    def test_the_jdwp_verdicts_tell_apart_what_a_410_probe_cannot(self):
        # Before, each of these said "a debugger can attach" and exited 0: the tunnel probe's 410
        # comes as well when the server cannot reach the JVM, or reaches something that is not one.
        banner = socket.socket()
        banner.bind(("127.0.0.1", 0))
        banner.listen(4)

        def greet():
            while True:
                try:
                    conn, _ = banner.accept()
                except OSError:
                    return
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                threading.Thread(target=lambda c=conn: (c.recv(100), c.close()), daemon=True).start()
        threading.Thread(target=greet, daemon=True).start()
        silent = Target(echo=False)
        cases = [
            ("nothing listens", dead_port(),
             r"FAIL +jdwp +the server could not reach the JVM, or the target closed at once \(410 Gone\): is the JVM "
             r"listening on its debug port"),
            ("another service", banner.getsockname()[1],
             r'FAIL +jdwp +the target answered the JDWP handshake with something else \("SSH-2\.0-OpenSSH_9\.2\\x0d\\x0a", '
             r"21 bytes\): the port the server forwards to is not a JVM's debug port"),
            ("a silent port", silent.port, r"FAIL +jdwp +the target took the JDWP handshake and answered nothing \(204"),
        ]
        try:
            for name, target_port, verdict in cases:
                with self.subTest(name):
                    server, port = start_server(target_port, "--long-poll-ms", "1000")
                    try:
                        code, out = check(f"http://127.0.0.1:{port}{ENDPOINT_PATH}")
                    finally:
                        server.stop(signal.SIGKILL)
                    self.assertEqual(code, 1, out)
                    self.assertRegex(out, r"(?m)^ok +tunnel +the endpoint answered the probe as a tunnel server does")
                    self.assertRegex(out, verdict)
                    self.assertIn("verdict: a debugger cannot attach yet", out)
        finally:
            banner.close()
            silent.close()

    def test_it_says_before_probing_that_a_live_session_ends(self):
        code, out = check(self.url, env={"TUNNEL_AGENT_SECRET": "right"})
        self.assertEqual(code, 0, out)
        lines = out.splitlines()
        said = next(i for i, l in enumerate(lines) if re.match(r"info +probe +opens the server's connection to the target "
                                                               r"and closes it again: a debug session live on this "
                                                               r"endpoint now ends", l))
        probed = next(i for i, l in enumerate(lines) if re.match(r"ok +tunnel", l))
        self.assertLess(said, probed)
        self.assertRegex(out, r"(?m)^ok +jdwp +the JVM answered the JDWP handshake through the tunnel")

    def test_it_refuses_to_probe_an_endpoint_an_agent_has_a_live_session_on(self):
        agent, port = start_agent(int(re.search(r":(\d+)/", self.url).group(1)), env={"TUNNEL_AGENT_SECRET": "right"})
        try:
            with connect(port) as s:
                self.assertEqual(exchange(s, b"first"), b"first")
                code, out = check(self.url, env={"TUNNEL_AGENT_SECRET": "right"})
                self.assertEqual(code, 1, out)
                self.assertRegex(out, rf"(?m)^FAIL +probe +tunnel-agent \(pid {agent.proc.pid}\) has a live session on "
                                      r"this endpoint, and the probe would end it")
                self.assertNotIn("ok    tunnel", out)
                # The session lives on: no x-disconnect reached the server.
                self.assertEqual(exchange(s, b"second"), b"second")
                self.assertEqual(self.server.count(r"closed: x-disconnect"), 0, self.server.output())
            agent.wait_for_line(r"session 1 .*closed after")
            code, out = check(self.url, env={"TUNNEL_AGENT_SECRET": "right"})
            self.assertEqual(code, 0, out)
        finally:
            agent.stop()

    def test_no_proxy_covering_the_host_is_reported_as_direct(self):
        # Before: "proxy 1 ... CONNECT accepted" for a proxy that was never used (and points at nothing).
        dead = f"http://127.0.0.1:{dead_port()}"
        code, out = check(self.url, env={"TUNNEL_AGENT_SECRET": "right", "http_proxy": dead, "no_proxy": "localhost,127.0.0.1"})
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"(?m)^info +proxy +direct: http_proxy \(127\.0\.0\.1:\d+\) is not used: 127\.0\.0\.1 is "
                              r"in no_proxy \(localhost,127\.0\.0\.1\)$")
        self.assertNotIn("CONNECT", out)
        self.assertRegex(out, r"(?m)^ok +name +127\.0\.0\.1 is 127\.0\.0\.1$")

    def test_a_proxy_that_refuses_connect(self):
        port = int(re.search(r":(\d+)/", self.url).group(1))
        squid = Squid(deny_port=port)
        try:
            code, out = check(self.url, "--proxy", squid.url, env={"TUNNEL_AGENT_SECRET": "right"})
        finally:
            squid.stop()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, rf"(?m)^ok +name +proxy 1 host 127\.0\.0\.1 is 127\.0\.0\.1")
        self.assertRegex(out, rf"FAIL +proxy +proxy 1 \(127\.0\.0\.1:{squid.port}\) refused CONNECT to 127\.0\.0\.1:{port}: "
                              r"403 Forbidden")

    def test_through_a_proxy_that_accepts_and_through_a_chain(self):
        port = int(re.search(r":(\d+)/", self.url).group(1))
        squid = Squid()
        tiny = Tinyproxy(user="bob", password="builder")
        try:
            code, out = check(self.url, "--proxy", squid.url, env={"TUNNEL_AGENT_SECRET": "right"})
            self.assertEqual(code, 0, out)
            self.assertRegex(out, rf"(?m)^ok +proxy 1 +127\.0\.0\.1:{squid.port} \(from --proxy\): CONNECT to "
                                  rf"127\.0\.0\.1:{port} accepted$")
            self.assertIn("verdict: a debugger can attach", out)
            # Two hops: squid first, then tinyproxy with its login, then the endpoint.
            code, out = check(self.url, "--proxy", squid.url, "--proxy", f"http://bob:builder@127.0.0.1:{tiny.port}",
                              env={"TUNNEL_AGENT_SECRET": "right"})
            self.assertEqual(code, 0, out)
            self.assertRegex(out, rf"(?m)^ok +proxy 1 +127\.0\.0\.1:{squid.port} \(from --proxy\): CONNECT to "
                                  rf"127\.0\.0\.1:{tiny.port} accepted$")
            self.assertRegex(out, rf"(?m)^ok +proxy 2 +127\.0\.0\.1:{tiny.port} .*CONNECT to 127\.0\.0\.1:{port} accepted$")
            self.assertIn("verdict: a debugger can attach", out)
            self.assertNotIn("builder", out)
            # The probe did go through both: squid carried a CONNECT to tinyproxy.
            wait_until(lambda: f"CONNECT 127.0.0.1:{tiny.port}" in squid.log(), 10, "squid's CONNECT to tinyproxy")
        finally:
            squid.stop()
            tiny.stop()
        self.server.wait_for_line(r"target connection \d+ closed: x-disconnect")

    def test_tls_untrusted_then_trusted(self):
        pki = Pki()
        front = Nghttpx(pki, int(re.search(r":(\d+)/", self.url).group(1)))
        try:
            code, out = check(front.url, env={"TUNNEL_AGENT_SECRET": "right"})
            self.assertEqual(code, 1, out)
            self.assertRegex(out, r'FAIL +TLS +TLS: the certificate .* is signed by "CN = tunnel-agent test ca", which is '
                                 r'not trusted here .*--cacert FILE')
            code, out = check(front.url, "--cacert", pki.path("ca.pem"), env={"TUNNEL_AGENT_SECRET": "right"})
            self.assertEqual(code, 0, out)
            self.assertRegex(out, r"(?m)^ok +TLS +TLSv1\.[23] / \S+; ALPN h2; certificate CN = tunnel-agent test server, "
                                  r"issued by CN = tunnel-agent test ca, expires .* \(in [12] days\)$")
            self.assertRegex(out, r"(?m)^ok +HTTP +HTTP/2 answered 410")
        finally:
            front.stop()
            pki.remove()

    def test_a_login_page_or_a_redirect_in_front(self):
        portal = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
        threading.Thread(target=portal.serve_forever, daemon=True).start()
        try:
            base = f"http://127.0.0.1:{portal.server_address[1]}"
            code, out = check(base + ENDPOINT_PATH)
            self.assertEqual(code, 1, out)
            self.assertRegex(out, r'FAIL +tunnel +an HTML page answered \(200 OK, "Sign in - Corp SSO"\): a login page')
            code, out = check(base + "/redirect" + ENDPOINT_PATH)
            self.assertEqual(code, 1, out)
            self.assertRegex(out, r"FAIL +tunnel +redirected \(302 Found\) to https://sso\.example/login\?next=/debug")
        finally:
            portal.shutdown()
            portal.server_close()


if __name__ == "__main__":
    unittest.main()
