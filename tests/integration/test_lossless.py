"""Lossless against a server as hostile as the real one: the test server holds each request before it
reads its body and loses the body when it answers first (--body-read-delay-ms 5 makes that window
5 ms wide, so any request discipline that lets it happen loses bodies here), and its reorder map
never frees a slot. Every test reads the server's counters and asserts that no body was lost."""
import json
import os
import shutil
import signal
import unittest
import urllib.request

from harness import (Process, Target, connect, exchange, sha256, start_agent, start_debuggee, start_server,
                     wait_until)
from link import Link

# The soak (scripts/soak) sets this to run the long versions.
LONG = os.environ.get("TUNNEL_LOSSLESS_LONG") == "1"


def server_stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/.tunnel-test-server/stats", timeout=10) as answer:
        return json.loads(answer.read())


class LosslessCase(unittest.TestCase):
    """A target that echoes, the hostile test server, optionally a slow link in front of it, and the agent."""
    link = None  # (delay ms each way, Mbit/s) or None
    server_args = ("--body-read-delay-ms", "5", "--long-poll-ms", "2000")

    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port, *self.server_args)
        self.relay = Link(self.server_port, *self.link) if self.link else None
        endpoint = self.relay.port if self.relay else self.server_port
        self.agent, self.port = start_agent(endpoint, "-v")

    def tearDown(self):
        code, _ = self.agent.stop()
        if self.relay:
            self.relay.close()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.assertEqual(code, 0, f"agent exit code {code}; its output:\n{self.agent.output()}")

    def assert_nothing_lost(self):
        stats = server_stats(self.server_port)
        # The figures go into the test's output, for the note and for whoever reads a failure.
        print(f"\n{self.id()}: server counters {stats}")
        self.assertEqual(stats["bodies_lost"], 0, f"{stats}\n" + "\n".join(
            line for line in self.server.lines if "lost" in line))
        self.assertEqual(stats["queue_overflows"], 0, stats)
        return stats

    def echo(self, size, timeout):
        payload = os.urandom(size)
        with connect(self.port) as s:
            back = exchange(s, payload, timeout=timeout)
        self.assertEqual(sha256(back), sha256(payload), f"echo of {size} bytes came back different")


class Loopback(LosslessCase):
    def test_echo_bursts_of_1_4_and_16_mib_are_byte_exact_and_lose_no_body(self):
        for mib in (1, 4, 16):
            with self.subTest(mib=mib):
                self.echo(mib << 20, timeout=120)
        stats = self.assert_nothing_lost()
        self.assertEqual(stats["out_of_order"], 0, "POSTs must reach the server in x-seq order")

    def test_two_way_echo_of_64_mib(self):
        self.echo((256 if LONG else 64) << 20, timeout=600)
        self.assert_nothing_lost()

    def test_request_reply_traffic_needs_no_resend(self):
        with connect(self.port) as s:
            for i in range(300):
                message = f"command {i} ".encode() * 5
                self.assertEqual(exchange(s, message, timeout=20), message)
        stats = self.assert_nothing_lost()
        self.assertEqual(stats["duplicates"], 0, "no needless resend: each costs a reorder slot for good")


@unittest.skipUnless(LONG, "scripts/soak runs it: it hung once under a loaded CI run (not understood yet; "
                           "the debugger stress below crosses the same link in scripts/test)")
class SlowLink(LosslessCase):
    """20 ms each way, 100 Mbit/s: bodies trickle in, which widens the server's window."""
    link = (20, 100)

    def test_echo_bursts_across_a_slow_link(self):
        for mib in ((1, 4, 16, 64) if LONG else (1, 4)):
            with self.subTest(mib=mib):
                self.echo(mib << 20, timeout=600)
        self.assert_nothing_lost()


class Stall(LosslessCase):
    """The server drops bodies on purpose (the lose-body fault): the agent must say so in time, send
    the body again, and end with a line that names the loss when nothing helps."""

    def start(self, *faults):
        self.agent.stop()
        self.server.stop(signal.SIGKILL)
        self.server, self.server_port = start_server(self.target.port, *self.server_args, *faults)
        self.agent, self.port = start_agent(self.server_port, "-v", "--stall-warning", "1.5")

    def test_one_lost_body_is_reported_and_sent_again(self):
        self.start("--fault", "lose-body@3")
        with connect(self.port) as s:
            for i in range(5):
                message = f"message {i}".encode()
                self.assertEqual(exchange(s, message, timeout=20), message)
        warning = self.agent.wait_for_line(r"session 1: what the local client sent has waited 2 s for an answer: the "
                                           r"last POST sent was x-seq (\d+); the server may have lost a request body")
        self.agent.wait_for_line(rf"session 1: .*sending x-seq {warning.group(1)} again")
        self.agent.wait_for_line(r"session 1: the target answered again after")
        stats = server_stats(self.server_port)
        self.assertEqual((stats["bodies_lost"], stats["bodies_recovered"]), (1, 1), stats)

    def test_a_body_lost_for_good_ends_the_session_naming_it(self):
        self.start("--fault", "lose-body@2+")
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"first", timeout=20), b"first")
            s.sendall(b"second")
            self.agent.wait_for_line(r"has waited 2 s for an answer: the last POST sent was x-seq \d+", timeout=10)
        line = self.agent.wait_for_line(r"session 1 .*failed .*: the local client gave up after the target had "
                                        r"answered nothing for \d+ s: the last POST sent was x-seq \d+")
        self.assertNotIn("the local client closed the connection", line.string)


class DebuggerStress(unittest.TestCase):
    """A real JVM and a real jdb: a breakpoint hit again and again, the stack and a variable read at
    each hit (each jdb command is several JDWP commands), through the hostile server."""
    hits = 1000 if LONG else 60

    def run_stress(self, link):
        self.assertTrue(shutil.which("java") and shutil.which("jdb"), "needs a JDK: scripts/setup installs it")
        jvm, jdwp_port = start_debuggee("StressDebuggee.java")
        server, server_port = start_server(jdwp_port, "--body-read-delay-ms", "5", "--long-poll-ms", "2000")
        relay = Link(server_port, *link) if link else None
        agent, port = start_agent(relay.port if relay else server_port)
        jdb = Process(["jdb", "-connect", f"com.sun.jdi.SocketAttach:hostname=127.0.0.1,port={port}"], stdin=True)
        try:
            jdb.wait_for_line(r"^> ", timeout=60)
            jdb.send("stop in StressDebuggee.tick\n")
            jdb.wait_for_line(r"Set breakpoint StressDebuggee\.tick", timeout=60)
            for hit in range(1, self.hits + 1):
                if hit > 1:
                    jdb.send("cont\n")
                wait_until(lambda: jdb.count(r"Breakpoint hit") >= hit, 60, f"breakpoint hit {hit}", jdb.cond)
                jdb.send("where\nprint i\n")
                wait_until(lambda: jdb.output().count(" i = ") >= hit, 60, f"print at hit {hit}", jdb.cond)
            jdb.send("clear StressDebuggee.tick\ncont\nquit\n")
            jdb.proc.wait(60)
            self.assertEqual(jdb.output().count(" i = "), self.hits)
            stats = server_stats(server_port)
            print(f"\n{self.id()}: {self.hits} breakpoint hits; server counters {stats}")
            self.assertEqual(stats["bodies_lost"], 0, stats)
            self.assertEqual(stats["queue_overflows"], 0, stats)
        finally:
            jdb.stop(signal.SIGKILL)
            code, _ = agent.stop()
            if relay:
                relay.close()
            server.stop(signal.SIGKILL)
            jvm.stop(signal.SIGKILL)
        self.assertEqual(code, 0, agent.output())

    def test_breakpoints_and_commands_on_loopback(self):
        self.run_stress(None)

    def test_breakpoints_and_commands_across_a_slow_link(self):
        self.run_stress((20, 100))


if __name__ == "__main__":
    unittest.main()
