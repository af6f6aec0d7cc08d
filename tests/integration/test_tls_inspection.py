"""A TLS-inspecting proxy, as company gateways are: squid with ssl-bump (squid-openssl) answers
every CONNECT itself, presents a certificate for the endpoint minted by its own CA, and makes its
own TLS connection to the endpoint (nghttpx with the test CA, in front of the test server)."""
import os
import shutil
import unittest

from harness import NO_PROXY_ENV, failed_line, Target, connect, exchange, sha256, start_agent, start_debuggee, start_server, \
    wait_until
from proxies import Squid
from test_check import check
from test_jdwp import jdb_threads
from tls import Nghttpx, Pki


class TlsInspection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()

    @classmethod
    def tearDownClass(cls):
        cls.pki.remove()

    def setUp(self):
        self.stops = []

    def tearDown(self):
        for stop in reversed(self.stops):
            stop()

    def path_to(self, target_port):
        """The test server for `target_port`, TLS in front of it, and the inspecting squid."""
        server, server_port = start_server(target_port, "--long-poll-ms", "1000")
        self.stops.append(server.stop)
        front = Nghttpx(self.pki, server_port)
        self.stops.append(front.stop)
        squid = Squid(inspect_trusting=self.pki.path("ca.pem"))
        self.stops.append(squid.stop)
        # By name: squid's minted certificate carries the endpoint's DNS name, not its address.
        return squid, front.url.replace("127.0.0.1", "localhost")

    def agent(self, squid, url, *args):
        agent, port = start_agent(0, "--proxy", squid.url, *args, url=url, env=NO_PROXY_ENV)
        self.stops.append(agent.stop)
        return agent, port

    def test_without_the_company_ca_the_line_names_the_inspecting_ca_and_says_cacert(self):
        target = Target()
        self.stops.append(target.close)
        squid, url = self.path_to(target.port)
        agent, port = self.agent(squid, url, "--cacert", self.pki.path("ca.pem"))  # the endpoint's own CA
        line = failed_line(agent, port)
        self.assertIn(f'signed by "O = Example Corp, CN = {Squid.INSPECT_CA_NAME}", which is not trusted here', line)
        self.assertIn("if that is your company's TLS inspection (on the way through proxy 1, "
                      f"127.0.0.1:{squid.port}), pass its CA certificate with --cacert FILE", line)

    def test_with_the_company_ca_the_tunnel_works(self):
        target = Target()
        self.stops.append(target.close)
        squid, url = self.path_to(target.port)
        agent, port = self.agent(squid, url, "--cacert", squid.inspect_ca)
        payload = os.urandom(1 << 20)
        with connect(port) as s:
            self.assertEqual(sha256(exchange(s, payload, timeout=60)), sha256(payload))
        agent.wait_for_line(r"session 1 .*closed after")
        self.assertEqual(agent.count(r"failed|error"), 0, agent.output())

    def test_check_names_the_inspecting_ca_or_says_how_to_trust_it(self):
        target = Target()
        self.stops.append(target.close)
        squid, url = self.path_to(target.port)
        code, out = check(url, "--proxy", squid.url, "--cacert", squid.inspect_ca)
        self.assertEqual(code, 0, out)
        self.assertIn(f"TLS inspected by O = Example Corp, CN = {Squid.INSPECT_CA_NAME}, or a server with a private "
                      f"CA: the certificate is trusted only through --cacert/--capath", out)
        self.assertIn(f"through proxy 1 (127.0.0.1:{squid.port})", out)
        code, out = check(url, "--proxy", squid.url, "--cacert", self.pki.path("ca.pem"))
        self.assertNotEqual(code, 0, out)
        self.assertIn(f'signed by "O = Example Corp, CN = {Squid.INSPECT_CA_NAME}", which is not trusted here', out)

    @unittest.skipUnless(shutil.which("jdb"), "no JDK (jdb): scripts/setup installs default-jdk-headless")
    def test_jdb_through_the_inspecting_proxy(self):
        jvm, jdwp_port = start_debuggee()
        self.stops.append(jvm.stop)
        squid, url = self.path_to(jdwp_port)
        agent, port = self.agent(squid, url, "--cacert", squid.inspect_ca)
        output = jdb_threads(port)
        self.assertRegex(output, r"Group main:\s*\n\s*\(java\.lang\.Thread\)\S+\s+main\s")
        agent.wait_for_line(r"session 1 .*closed after")
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        # squid logs each request it inspected, inside the tunnel: the tunnel's own POSTs among them.
        wait_until(lambda: "POST https://localhost:" in squid.log(), 10, "squid to log the inspected POSTs")


if __name__ == "__main__":
    unittest.main()
