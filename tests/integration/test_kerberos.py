"""Kerberos (Negotiate) logins to a proxy, against a real MIT KDC on loopback: squid checks tickets
with its negotiate_kerberos_auth helper and a keytab for HTTP/localhost; the user's ticket comes
from a real kinit into a private credential cache. The agent is given no user and no password."""
import os
import unittest

from harness import NO_PROXY_ENV, failed_line, Target, connect, exchange, sha256, start_agent, start_server, wait_until
import kerberos
from proxies import Squid, Tinyproxy



@unittest.skipIf(kerberos.available(), kerberos.available())
class KerberosProxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kdc = kerberos.Kdc()
        cls.kdc.add_user("alice", "alice-kerberos-pw")
        cls.squid = Squid(auth="negotiate", kdc=cls.kdc)
        cls.ticket = os.path.join(cls.kdc.dir, "alice.cc")
        cls.kdc.kinit("alice", "alice-kerberos-pw", cls.ticket)

    @classmethod
    def tearDownClass(cls):
        cls.squid.stop()
        cls.kdc.stop()

    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port, "--long-poll-ms", "1000")
        self.agents = []

    def tearDown(self):
        codes = [agent.stop()[0] for agent in self.agents]
        self.server.stop()
        self.target.close()
        self.assertEqual(codes, [0] * len(codes), [a.output() for a in self.agents])

    def agent(self, *args, cache=None):
        env = {**NO_PROXY_ENV, **self.kdc.env, "KRB5CCNAME": f"FILE:{cache or self.ticket}"}
        agent, port = start_agent(self.server_port, *args, env=env)
        self.agents.append(agent)
        return agent, port

    def round_trip(self, port, size):
        payload = os.urandom(size)
        with connect(port) as s:
            self.assertEqual(sha256(exchange(s, payload)), sha256(payload))

    def alice_logins(self):
        return self.squid.log().count(f"CONNECT 127.0.0.1:{self.server_port} alice@{self.kdc.realm}")

    def squid_logged_alice(self, agent, before):
        """squid logs a tunnel when it ends: the agent's kept-alive connections end when it stops."""
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        wait_until(lambda: self.alice_logins() > before, 10, "squid to log alice's Kerberos login to the endpoint")

    def test_the_ticket_logs_in_with_no_user_and_no_password(self):
        for auth in ("any", "negotiate"):
            with self.subTest(auth=auth):
                before = self.alice_logins()
                agent, port = self.agent("--proxy", self.squid.host_url, "--proxy-auth", auth)
                self.round_trip(port, 1 << 20)
                self.squid_logged_alice(agent, before)
                self.assertEqual(agent.count(r"warning|error"), 0, agent.output())

    def test_no_ticket_says_to_run_kinit_with_the_realm(self):
        agent, port = self.agent("--proxy", self.squid.host_url, cache=os.path.join(self.kdc.dir, "no-such-cache"))
        line = failed_line(agent, port)
        self.assertIn(f"proxy 1 (localhost:{self.squid.port}) requires a Kerberos login (Negotiate): "
                      "there is no Kerberos ticket to log in with", line)
        self.assertIn(f"run kinit USER@{self.kdc.realm}", line)

    def test_a_proxy_reached_by_a_name_kerberos_does_not_know_is_named(self):
        # Its service is HTTP/localhost; by its address, the KDC has no such service.
        agent, port = self.agent("--proxy", self.squid.url)
        line = failed_line(agent, port)
        self.assertIn(f"Kerberos cannot log alice@{self.kdc.realm} in to HTTP@127.0.0.1", line)

    def test_hop_2_of_a_chain_logs_in_with_the_ticket(self):
        tiny = Tinyproxy()
        try:
            before = self.alice_logins()
            agent, port = self.agent("--proxy", tiny.url, "--proxy", self.squid.host_url)
            # Several connections: the first learns that hop 2 wants Kerberos, later ones send the
            # ticket with their first CONNECT.
            for _ in range(3):
                self.round_trip(port, 256 * 1024)
            self.squid_logged_alice(agent, before)
            self.assertIn(f"CONNECT localhost:{self.squid.port}", tiny.log(), "hop 1 was asked to reach hop 2")
        finally:
            tiny.stop()

    def test_hop_2_without_a_ticket_says_to_run_kinit(self):
        tiny = Tinyproxy()
        try:
            agent, port = self.agent("--proxy", tiny.url, "--proxy", self.squid.host_url,
                                     cache=os.path.join(self.kdc.dir, "no-such-cache"))
            line = failed_line(agent, port)
            self.assertIn(f"proxy 2 (localhost:{self.squid.port}) requires a Kerberos login (Negotiate): "
                          f"there is no Kerberos ticket to log in with", line)
            self.assertIn(f"run kinit USER@{self.kdc.realm}", line)
        finally:
            tiny.stop()


if __name__ == "__main__":
    unittest.main()
