"""Through real proxies (squid, tinyproxy) on loopback: CONNECT always, logins, environment, errors."""
import os
import re
import signal
import tempfile
import unittest

from harness import NO_PROXY_ENV, Target, failed_line, connect, exchange, dead_port, read_until_closed, sha256, start_agent, start_server, \
    wait_until
from proxies import Squid, Tinyproxy
from tls import NghttpxProxy, Pki


class ProxyTest(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port, "--long-poll-ms", "1000")
        self.proxies = []
        self.agents = []

    def tearDown(self):
        codes = [agent.stop()[0] for agent in self.agents]
        for proxy in self.proxies:
            proxy.stop()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.assertEqual(codes, [0] * len(codes), [a.output() for a in self.agents])

    def proxy(self, proxy):
        self.proxies.append(proxy)
        return proxy

    def agent(self, *args, env=None):
        base = {**NO_PROXY_ENV, **(env or {})}
        agent, port = start_agent(self.server_port, *args, env=base)
        self.agents.append(agent)
        return agent, port

    def round_trip(self, port, size=64 * 1024):
        payload = os.urandom(size)
        with connect(port) as s:
            self.assertEqual(sha256(exchange(s, payload)), sha256(payload))

    def failed_line(self, agent, port):
        return failed_line(agent, port)


class SquidRestart(ProxyTest):
    def test_a_session_idling_through_a_squid_restart_carries_on_byte_exact(self):
        # Spring's 10 s long poll: the request held through the old squid stays held, dead.
        self.server.stop(signal.SIGKILL)
        self.server, self.server_port = start_server(self.target.port, "--long-poll-ms", "10000", "--log-requests")
        squid = self.proxy(Squid())
        agent, port = self.agent("--proxy", squid.url)

        def target_says(size):
            """The target speaks on its own (as a JVM sends JDWP events); the bytes must arrive."""
            data = os.urandom(size)
            self.target.conns[-1].sendall(data)
            s.settimeout(20)
            back = bytearray()
            while len(back) < len(data):
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, "the session ended:\n" + agent.output())
                back.extend(chunk)
            self.assertEqual(sha256(bytes(back)), sha256(data))

        with connect(port) as s:
            self.target.wait_opened(1)
            target_says(1000)
            # Idle: one GET waits, held by the server through squid.
            wait_until(lambda: self.server.count(r"held GET") >= 2, 10, "the next waiting GET", self.server.cond)
            held_before = self.server.count(r"held GET")
            squid.restart()  # the waiting GET dies with squid, but the server still holds it
            agent.wait_for_line(r"session 1: GET: .*; trying again in \d+ ms")
            # Through the new squid: two GETs, so that the server releases the dead one (429).
            # (within 6 s: the server answers the dead one 204 itself after its 10 s long poll)
            wait_until(lambda: self.server.count(r"held GET") >= held_before + 2, 6, "two GETs after the restart",
                       self.server.cond)
            target_says(50 * 1024)
            again = os.urandom(1000)
            self.assertEqual(exchange(s, again), again)
        agent.wait_for_line(r"session 1 \(.*\) closed after .* exchanges retried")
        self.assertEqual(self.server.count(r"answered into a dead connection"), 0, self.server.output())


class Squids(ProxyTest):
    def test_no_login_http_endpoint_goes_through_connect(self):
        squid = self.proxy(Squid())
        agent, port = self.agent("--proxy", squid.url)
        for size in (1, 64 * 1024, 16 * 1024 * 1024):
            self.round_trip(port, size)
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{squid.port} \(from --proxy\)")
        agent.stop()
        # squid writes a CONNECT's log line when the tunnel closes: the agent has stopped, so all have.
        wait_until(lambda: "CONNECT 127.0.0.1:" in squid.log(), 10, "CONNECT in squid's access log")
        log = squid.log()
        self.assertIn(f"CONNECT 127.0.0.1:{self.server_port}", log)
        self.assertNotRegex(log, r"\b(GET|POST) ", "the agent never sends plain requests to the proxy")

    def test_basic_login_right_wrong_and_missing(self):
        squid = self.proxy(Squid(auth="basic", users={"alice": "wonder land"}))
        agent, port = self.agent("--proxy", squid.url, "--proxy-user", "alice",
                                 env={"TUNNEL_AGENT_PROXY_PASSWORD": "wonder land"})
        self.round_trip(port)
        self.assertNotIn("wonder land", agent.output())

        agent, port = self.agent("--proxy", squid.url, "--proxy-user", "alice", env={"TUNNEL_AGENT_PROXY_PASSWORD": "nope"})
        line = self.failed_line(agent, port)
        self.assertIn(f"proxy 1 (127.0.0.1:{squid.port}) refused the login (407 Proxy Authentication Required)", line)
        self.assertIn("offers Basic", line)
        self.assertNotIn("nope", agent.output())

        agent, port = self.agent("--proxy", squid.url)
        line = self.failed_line(agent, port)
        self.assertIn(f"proxy 1 (127.0.0.1:{squid.port}) requires authentication (offers Basic): give --proxy-user",
                      line)

    def test_vv_through_a_proxy_with_a_login_prints_no_password_secret_or_header_value(self):
        squid = self.proxy(Squid(auth="basic", users={"alice": "pa55-in-url", "carol": "pa55-in-env"}))
        logins = ((squid.url.replace("http://", "http://alice:pa55-in-url@"), (), {}),
                  (squid.url, ("--proxy-user", "carol"), {"TUNNEL_AGENT_PROXY_PASSWORD": "pa55-in-env"}))
        for url, args, env in logins:
            agent, port = self.agent("--proxy", url, *args, "-vv", "-H", "X-Api-Key: key-in-header",
                                     env={"TUNNEL_AGENT_SECRET": "secret-in-env", **env})
            self.round_trip(port, 1000)
            agent.wait_for_line(r"session \d+ .*closed")
            agent.stop()
            output = agent.output()
            self.assertIn("Proxy-Authorization: ***", output)  # the trace is there, masked
            for secret in ("pa55-in-url", "pa55-in-env", "secret-in-env", "key-in-header"):
                self.assertNotIn(secret, output)

    def test_credentials_in_the_proxy_url_percent_encoded(self):
        squid = self.proxy(Squid(auth="basic", users={"al@ce": "p:ss/w rd"}))
        agent, port = self.agent("--proxy", f"http://al%40ce:p%3Ass%2Fw%20rd@127.0.0.1:{squid.port}")
        self.round_trip(port)
        self.assertNotIn("p:ss", agent.output())

    def test_password_file(self):
        squid = self.proxy(Squid(auth="basic", users={"alice": "from-a-file"}))
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("from-a-file\n")
        try:
            agent, port = self.agent("--proxy", squid.url, "--proxy-user", "alice", "--proxy-password-file", f.name)
            self.round_trip(port)
        finally:
            os.unlink(f.name)

    def test_digest_login(self):
        squid = self.proxy(Squid(auth="digest", users={"dora": "dig it"}))
        agent, port = self.agent("--proxy", squid.url, "--proxy-user", "dora", env={"TUNNEL_AGENT_PROXY_PASSWORD": "dig it"})
        self.round_trip(port)
        agent, port = self.agent("--proxy", squid.url, "--proxy-user", "dora", "--proxy-auth", "digest",
                                 env={"TUNNEL_AGENT_PROXY_PASSWORD": "wrong"})
        self.assertIn("refused the login", self.failed_line(agent, port))
        for a in self.agents:
            a.stop()
        wait_until(lambda: " dora " in squid.log(), 10, "dora in squid's access log")

    def test_ntlm_login(self):
        # squid's ntlm_fake_auth accepts any password: this shows the NTLM handshake itself works.
        squid = self.proxy(Squid(auth="ntlm"))
        agent, port = self.agent("--proxy", squid.url, "--proxy-user", "nina", "--proxy-auth", "ntlm",
                                 env={"TUNNEL_AGENT_PROXY_PASSWORD": "whatever"})
        self.round_trip(port)
        agent.stop()
        # ntlm_fake_auth logs the user as "n\\ninaw".
        wait_until(lambda: re.search(r"TCP_TUNNEL/200 \d+ CONNECT \S+ \S*nina", squid.log()), 10,
                   "nina's tunnel in squid's access log")

    def test_proxy_refusing_connect_names_the_hop(self):
        squid = self.proxy(Squid(deny_port=self.server_port))
        agent, port = self.agent("--proxy", squid.url)
        line = self.failed_line(agent, port)
        self.assertIn(f"proxy 1 (127.0.0.1:{squid.port}) refused CONNECT to 127.0.0.1:{self.server_port}: "
                      "403 Forbidden", line)


class Tinyproxies(ProxyTest):
    def test_basic_login(self):
        tiny = self.proxy(Tinyproxy("bob", "builder"))
        agent, port = self.agent("--proxy", tiny.url, "--proxy-user", "bob", env={"TUNNEL_AGENT_PROXY_PASSWORD": "builder"})
        self.round_trip(port, 1024 * 1024)
        agent, port = self.agent("--proxy", tiny.url)
        self.assertIn("requires authentication", self.failed_line(agent, port))


class Chains(ProxyTest):
    def connects_in(self, proxy):
        return len(re.findall(r"TCP_TUNNEL/200 .*CONNECT|CONNECT .* HTTP/1\.[01]\"? *$|Established connection", proxy.log(),
                              re.M))

    def test_two_proxies_each_with_its_own_login(self):
        tiny = self.proxy(Tinyproxy("bob", "builder"))
        squid = self.proxy(Squid(auth="basic", users={"alice": "in chains"}))
        agent, port = self.agent("--proxy", tiny.url, "--proxy-user", "bob",
                                 "--proxy", f"http://alice:in%20chains@127.0.0.1:{squid.port}",
                                 env={"TUNNEL_AGENT_PROXY_PASSWORD": "builder"})
        # 4 MiB: through proxies a POST carries at most 60 KiB and waits for the one before it to be
        # surely read, so a two-way stream moves slowly (docs/PROTOCOL-NOTES.md).
        self.round_trip(port, 4 * 1024 * 1024)
        agent.stop()
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.server_port} alice" in squid.log(), 10,
                   "squid (hop 2) to log alice's CONNECT to the endpoint")
        self.assertIn(f"CONNECT 127.0.0.1:{squid.port}", tiny.log(), "hop 1 was asked to reach hop 2")

    def test_three_proxies_4_mib_byte_identical_and_chains_reused(self):
        first = self.proxy(Squid(auth="digest", users={"dave": "first"}))
        second = self.proxy(Tinyproxy("bob", "builder"))
        third = self.proxy(Squid(auth="basic", users={"carol": "third"}))
        agent, port = self.agent("--proxy", first.url, "--proxy-user", "dave",
                                 "--proxy", f"http://bob:builder@127.0.0.1:{second.port}",
                                 "--proxy", f"http://carol:third@127.0.0.1:{third.port}", "-v",
                                 env={"TUNNEL_AGENT_PROXY_PASSWORD": "first"})
        with connect(port) as s:
            for _ in range(3):
                payload = os.urandom(4 * 1024 * 1024 // 3)
                self.assertEqual(sha256(exchange(s, payload)), sha256(payload))
            for i in range(50):
                self.assertEqual(exchange(s, b"ping %d" % i), b"ping %d" % i)
        agent.wait_for_line(r"session 1 .*closed")
        exchanges = agent.count(r"session 1: (GET|POST)")
        agent.stop()
        wait_until(lambda: "carol" in third.log(), 10, "the third proxy to log carol's CONNECT")
        tunnels = len(re.findall(rf"CONNECT 127\.0\.0\.1:{self.server_port} carol", third.log()))
        # Hundreds of exchanges, a handful of chained connections: established chains are kept alive
        # (the server, as Tomcat, closes a connection after 100 requests: one more chain for each).
        self.assertGreater(exchanges, 100)
        self.assertLessEqual(tunnels, 6 + exchanges // 100, third.log())
        wait_until(lambda: " dave " in first.log(), 10, "hop 1 (squid, Digest) to log dave's tunnel")

    def test_wrong_password_on_hop_2_names_hop_2(self):
        tiny = self.proxy(Tinyproxy())
        squid = self.proxy(Squid(auth="basic", users={"alice": "right"}))
        agent, port = self.agent("--proxy", tiny.url, "--proxy", f"http://alice:wrong@127.0.0.1:{squid.port}")
        line = self.failed_line(agent, port)
        self.assertIn(f"proxy 2 (127.0.0.1:{squid.port}) refused the login (407 Proxy Authentication Required)", line)
        self.assertNotIn("wrong", agent.output())

    def test_hop_2_refusing_connect_and_hop_2_missing_login(self):
        tiny = self.proxy(Tinyproxy())
        squid = self.proxy(Squid(deny_port=self.server_port))
        agent, port = self.agent("--proxy", tiny.url, "--proxy", squid.url)
        self.assertIn(f"proxy 2 (127.0.0.1:{squid.port}) refused CONNECT to 127.0.0.1:{self.server_port}: 403",
                      self.failed_line(agent, port))
        locked = self.proxy(Squid(auth="basic", users={"x": "y"}))
        agent, port = self.agent("--proxy", tiny.url, "--proxy", locked.url)
        self.assertIn(f"proxy 2 (127.0.0.1:{locked.port}) requires authentication (offers Basic): put user:password "
                      "in its --proxy URL", self.failed_line(agent, port))


class Environment(ProxyTest):
    def test_http_proxy_variable_is_used(self):
        squid = self.proxy(Squid())
        agent, port = self.agent(env={"http_proxy": squid.url})
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{squid.port} \(from http_proxy\)")
        self.round_trip(port)
        agent.stop()
        wait_until(lambda: "CONNECT 127.0.0.1:" in squid.log(), 10, "CONNECT in squid's access log")

    def test_no_proxy_and_the_no_proxy_flag_go_direct(self):
        dead = f"http://127.0.0.1:{dead_port()}"
        agent, port = self.agent(env={"http_proxy": dead, "no_proxy": "127.0.0.1"})
        self.round_trip(port)
        # One endpoint carries one session at a time: the next agent starts once this one let go.
        agent.wait_for_line(r"session 1 .*closed")
        agent, port = self.agent("--no-proxy", env={"http_proxy": dead})
        self.round_trip(port)
        self.assertNotIn("proxy 1", agent.output())

    def test_unreachable_proxy_is_named(self):
        refusing = dead_port()
        agent, port = self.agent(env={"http_proxy": f"http://127.0.0.1:{refusing}"})
        line = self.failed_line(agent, port)
        self.assertIn(f"cannot connect to proxy 1 (127.0.0.1:{refusing}, from http_proxy)", line)
        self.assertIn("--no-proxy", line)

    def test_upper_case_all_proxy_is_used_and_upper_case_no_proxy_goes_direct(self):
        squid = self.proxy(Squid())
        agent, port = self.agent(env={"ALL_PROXY": squid.url})
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{squid.port} \(from ALL_PROXY\)")
        self.round_trip(port)
        agent.stop()
        wait_until(lambda: "CONNECT 127.0.0.1:" in squid.log(), 10, "CONNECT in squid's access log")
        dead = f"http://127.0.0.1:{dead_port()}"
        agent, port = self.agent(env={"ALL_PROXY": dead, "NO_PROXY": "127.0.0.1"})
        self.round_trip(port)


class HttpsProxy(ProxyTest):
    """An HTTPS proxy as hop 1 (TLS to the proxy itself): nghttpx in its proxy mode, squid behind it."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()

    @classmethod
    def tearDownClass(cls):
        cls.pki.remove()

    def setUp(self):
        super().setUp()
        self.squid = self.proxy(Squid())
        self.front = self.proxy(NghttpxProxy(self.pki, self.squid.port))

    def test_tls_to_the_proxy_checked_with_proxy_cacert(self):
        agent, port = self.agent("--proxy", self.front.url, "--proxy-cacert", self.pki.path("ca.pem"))
        agent.wait_for_line(rf"proxy 1: https://127\.0\.0\.1:{self.front.port}")
        for size in (1, 256 * 1024):
            self.round_trip(port, size)
        agent.stop()  # squid logs a CONNECT once its tunnel closes
        wait_until(lambda: "CONNECT 127.0.0.1:" in self.squid.log(), 10, "CONNECT in squid's access log")

    def test_untrusted_proxy_certificate_names_the_proxy_and_proxy_insecure_warns(self):
        agent, port = self.agent("--proxy", self.front.url, "--proxy-cacert", self.pki.path("other-ca.pem"))
        line = self.failed_line(agent, port)
        self.assertIn(f"TLS to proxy 1 (https://127.0.0.1:{self.front.port}, from --proxy): its certificate signed by "
                      f'"CN = tunnel-agent test ca" is not trusted', line)
        self.assertIn("use --proxy-cacert", line)
        agent.stop()
        agent, port = self.agent("--proxy", self.front.url, "--proxy-insecure")
        agent.wait_for_line(r"warning: .*--proxy-insecure")
        self.round_trip(port)


if __name__ == "__main__":
    unittest.main()
