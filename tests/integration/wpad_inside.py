"""The WPAD cases, run by test_wpad.py inside a network namespace whose resolv.conf searches
$WPAD_TEST_DOMAIN and whose hosts file names wpad.tunnel.test only. Not a test_ file: outside that
namespace it would bind the machine's port 80."""
import os
import re
import unittest

from harness import NO_PROXY_ENV, AGENT, ENDPOINT_PATH, Process, Target, connect, exchange, start_server, wait_until
from proxies import Squid
from test_pac import PacServer

DOMAIN = os.environ.get("WPAD_TEST_DOMAIN", "")  # set by test_wpad.py


@unittest.skipUnless(DOMAIN, "run by test_wpad.py inside its network namespace")
class WpadInside(unittest.TestCase):
    def setUp(self):
        self.stops = []
        target = Target()
        server, self.server_port = start_server(target.port, "--long-poll-ms", "1000")
        self.stops += [target.close, server.stop]
        self.url = f"http://127.0.0.1:{self.server_port}{ENDPOINT_PATH}"

    def tearDown(self):
        for stop in reversed(self.stops):
            stop()

    def run_agent(self):
        agent = Process([AGENT, "--proxy-auto", "-L", f"127.0.0.1:0={self.url}"], env=NO_PROXY_ENV)
        self.stops.append(agent.stop)
        port = int(agent.wait_for_line(rf"listening on 127\.0\.0\.1:(\d+), tunnelling to {re.escape(self.url)}").group(1))
        return agent, port

    def echo(self, port):
        payload = b"through WPAD " * 3000
        with connect(port) as s:
            self.assertEqual(exchange(s, payload, timeout=30), payload)

    def test_the_pac_script_of_the_parent_domain_is_found_and_its_squid_carries_the_stream(self):
        squid = Squid()
        self.stops.append(squid.stop)
        pac = PacServer(f"function FindProxyForURL(url, host) {{ return 'PROXY 127.0.0.1:{squid.port}'; }}\n",
                        port=80, path="/wpad.dat")
        self.stops.append(pac.stop)
        agent, port = self.run_agent()
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{squid.port} \(from PAC http://wpad\.tunnel\.test/wpad\.dat "
                            rf"\(WPAD\), which answered \"PROXY 127\.0\.0\.1:{squid.port}\"\)")
        self.echo(port)
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        self.assertEqual(pac.requests, 1, "the script is fetched once, from the one wpad host that exists")
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.server_port}" in squid.log(), 10, "squid to log the tunnel")

    def test_a_captive_portal_at_the_first_wpad_host_is_passed_over_for_the_parent_domains_script(self):
        # wpad.DOMAIN answers every path with a 200 HTML page, as a guest network's portal does.
        portal = PacServer("<html><body>Sign in to the guest network</body></html>\n", port=80, path="/wpad.dat",
                           host="127.0.0.2", content_type="text/html")
        self.stops.append(portal.stop)
        squid = Squid()
        self.stops.append(squid.stop)
        pac = PacServer(f"function FindProxyForURL(url, host) {{ return 'PROXY 127.0.0.1:{squid.port}'; }}\n",
                        port=80, path="/wpad.dat")
        self.stops.append(pac.stop)
        agent, port = self.run_agent()
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{squid.port} \(from PAC http://wpad\.tunnel\.test/wpad\.dat "
                            rf"\(WPAD\)")
        self.echo(port)
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        self.assertEqual(portal.requests, 1, "the portal was asked first")
        self.assertEqual(pac.requests, 1)
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.server_port}" in squid.log(), 10, "squid to log the tunnel")

    def test_no_wpad_server_is_said_with_what_was_tried_and_the_agent_goes_direct(self):
        agent, port = self.run_agent()
        line = agent.wait_for_line(r"--proxy-auto: no PAC script found by WPAD \(tried .*\): going direct").string
        self.assertIn(f"http://wpad.{DOMAIN}/wpad.dat (", line)
        self.assertIn("http://wpad.tunnel.test/wpad.dat (", line)
        self.assertNotIn("http://wpad.test/", line, "never the top-level wpad host")
        self.echo(port)
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())


if __name__ == "__main__":
    unittest.main()
