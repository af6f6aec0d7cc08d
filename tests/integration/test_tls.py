"""TLS to the endpoint: nghttpx (HTTP/2) in front of the test server, with a test CA made here."""
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness
from harness import Target, connect, exchange, read_until_closed, sha256, start_agent, start_server, wait_until
from proxies import Squid
from tls import Nghttpx, Pki


def established_connections(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


class Tls(unittest.TestCase):
    client_cert = False

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()

    @classmethod
    def tearDownClass(cls):
        cls.pki.remove()

    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port, "--long-poll-ms", "1000")
        self.front = Nghttpx(self.pki, self.server_port, client_cert=self.client_cert)
        self.agents = []

    def tearDown(self):
        codes = [agent.stop()[0] for agent in self.agents]
        self.front.stop()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.assertEqual(codes, [0] * len(codes), [a.output() for a in self.agents])

    def agent(self, *args):
        agent, port = start_agent(0, *args, url=self.front.url, env={"https_proxy": "", "all_proxy": ""})
        self.agents.append(agent)
        return agent, port

    def failed_line(self, agent, port):
        with connect(port) as s:
            read_until_closed(s)
        return agent.wait_for_line(r"session \d+ .*failed").string


class Http2(Tls):
    def test_round_trips_over_http2_multiplexed_on_one_connection(self):
        agent, port = self.agent("--cacert", self.pki.path("ca.pem"), "-v")
        with connect(port) as s:
            for size in (1, 64 * 1024, 16 * 1024 * 1024):
                payload = os.urandom(size)
                self.assertEqual(sha256(exchange(s, payload)), sha256(payload))
            # The waiting GET and the POSTs of all those exchanges shared one TLS connection.
            self.assertEqual(established_connections(self.front.port), 1)
        agent.wait_for_line(r"session 1 .*closed")
        self.assertGreater(agent.count(r"POST x-seq \d+ .*-> HTTP/2 \d+"), 0, "the POSTs went over HTTP/2")
        self.assertEqual(agent.count(r"-> HTTP/1"), 0, "every exchange went over HTTP/2")

    def test_vv_over_http2_prints_no_secret_and_no_header_value(self):
        # HTTP/2 traces every request header in lines of its own ("h2h3 [x-auth-token: ...]").
        secrets = ("s3cr3t-h2-value", "tok-h2-value")
        agent, port = start_agent(0, "--cacert", self.pki.path("ca.pem"), "-vv", "-H", f"Authorization: Bearer {secrets[1]}",
                                  url=self.front.url, env={"https_proxy": "", "all_proxy": "", "TUNNEL_AGENT_SECRET": secrets[0]})
        self.agents.append(agent)
        with connect(port) as s:
            self.assertEqual(exchange(s, b"traced"), b"traced")
        agent.wait_for_line(r"session 1 .*closed")
        self.assertGreater(agent.count(r"h2h3 \[|\[HTTP/2\]"), 0, "the trace shows the HTTP/2 request headers")
        check = subprocess.run([harness.AGENT, "check", self.front.url, "--cacert", self.pki.path("ca.pem"), "-vv",
                                "-H", f"Authorization: Bearer {secrets[1]}"], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, https_proxy="", all_proxy="", TUNNEL_AGENT_SECRET=secrets[0]))
        for output in (agent.output(), check.stdout + check.stderr):
            for secret in secrets:
                self.assertNotIn(secret, output)

    def test_untrusted_certificate(self):
        agent, port = self.agent("--cacert", self.pki.path("other-ca.pem"))
        line = self.failed_line(agent, port)
        # The line names the CA that signed what the server presented (not the one given).
        self.assertIn('signed by "CN = tunnel-agent test ca", which is not trusted here', line)
        self.assertIn("pass its CA certificate with --cacert FILE", line)

    def test_capath_a_directory_of_hashed_ca_certificates(self):
        trusted = tempfile.mkdtemp(prefix="capath-", dir=self.pki.dir)
        shutil.copy(self.pki.path("ca.pem"), trusted)
        subprocess.run(["openssl", "rehash", trusted], check=True)
        agent, port = self.agent("--capath", trusted)
        with connect(port) as s:
            self.assertEqual(exchange(s, b"by capath"), b"by capath")
        agent.wait_for_line(r"session 1 .*closed")
        # The directory is what made it trusted: one holding only the other CA is refused.
        other = tempfile.mkdtemp(prefix="capath-", dir=self.pki.dir)
        shutil.copy(self.pki.path("other-ca.pem"), other)
        subprocess.run(["openssl", "rehash", other], check=True)
        agent, port = self.agent("--capath", other)
        self.assertIn('signed by "CN = tunnel-agent test ca", which is not trusted here', self.failed_line(agent, port))

    def test_pinned_public_key(self):
        agent, port = self.agent("--cacert", self.pki.path("ca.pem"), "--pinned-pubkey", self.pki.pin("server.pem"))
        with connect(port) as s:
            self.assertEqual(exchange(s, b"pinned"), b"pinned")
        agent, port = self.agent("--cacert", self.pki.path("ca.pem"), "--pinned-pubkey", self.pki.pin("client.pem"))
        self.assertIn("TLS: the pinned public key does not match", self.failed_line(agent, port))

    def test_insecure_works_and_warns(self):
        agent, port = self.agent("--insecure")
        agent.wait_for_line(r"warning: --insecure: the endpoint's TLS certificate is NOT checked")
        with connect(port) as s:
            self.assertEqual(exchange(s, b"unchecked"), b"unchecked")


class ProxiedTls(Tls):
    def test_upper_case_https_proxy_is_used_for_an_https_endpoint(self):
        squid = Squid()
        try:
            env = {"https_proxy": "", "all_proxy": "", "ALL_PROXY": "", "no_proxy": "", "NO_PROXY": "",
                   "HTTPS_PROXY": squid.url}
            agent, port = start_agent(0, "--cacert", self.pki.path("ca.pem"), url=self.front.url, env=env)
            self.agents.append(agent)
            agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{squid.port} \(from HTTPS_PROXY\)")
            with connect(port) as s:
                self.assertEqual(exchange(s, b"through squid"), b"through squid")
            agent.stop()  # squid logs a CONNECT once its tunnel closes
            wait_until(lambda: f"CONNECT 127.0.0.1:{self.front.port}" in squid.log(), 10, "CONNECT in squid's log")
        finally:
            squid.stop()


class ClientCertificate(Tls):
    client_cert = True

    def test_client_certificate_required(self):
        agent, port = self.agent("--cacert", self.pki.path("ca.pem"), "--cert", self.pki.path("client.pem"),
                                 "--key", self.pki.path("client.key"))
        with connect(port) as s:
            payload = os.urandom(100_000)
            self.assertEqual(sha256(exchange(s, payload)), sha256(payload))
        agent, port = self.agent("--cacert", self.pki.path("ca.pem"))
        line = self.failed_line(agent, port)
        self.assertIn("TLS", line)
        self.assertIn("--cert", line)


if __name__ == "__main__":
    unittest.main()
