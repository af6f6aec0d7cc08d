"""Lossless against a server as hostile as the real one: the test server holds each request before it
reads its body and loses the body when it answers first (--body-read-delay-ms 5 makes that window
5 ms wide, so any request discipline that lets it happen loses bodies here), and its reorder map
never frees a slot. Every test reads the server's counters and asserts that no body was lost."""
import hashlib
import os
import re
import shutil
import signal
import socket
import threading
import unittest

from harness import (Process, Target, connect, exchange, server_stats, sha256, start_agent, start_debuggee,
                     start_server, wait_until)
from link import Link
from proxies import Squid

# The soak (scripts/soak) sets this to run the long versions.
LONG = os.environ.get("TUNNEL_LOSSLESS_LONG") == "1"


class LosslessCase(unittest.TestCase):
    """A target that echoes, the hostile test server, optionally a slow link in front of it, and the agent."""
    link = None  # (delay ms each way, Mbit/s) or None
    through_squid = False  # the agent reaches the server (or the link) through a squid by CONNECT
    server_args = ("--body-read-delay-ms", "5", "--long-poll-ms", "2000")

    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port, *self.server_args)
        self.relay = Link(self.server_port, *self.link) if self.link else None
        endpoint = self.relay.port if self.relay else self.server_port
        self.squid = Squid() if self.through_squid else None
        self.agent, self.port = start_agent(endpoint, "-v", *(("--proxy", self.squid.url) if self.squid else ()))

    def tearDown(self):
        code, _ = self.agent.stop()
        if self.squid:
            self.squid.stop()
        if self.relay:
            self.relay.close()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.assertEqual(code, 0, f"agent exit code {code}; its output:\n{self.agent.output()}")

    def assert_nothing_lost(self):
        stats = server_stats(self.server_port)
        # The figures go into the test's output, for the note and for whoever reads a failure.
        print(f"\n{self.id()}: server counters {stats}")
        if stats["bodies_lost"]:
            # What the agent did around the first lost body, for whoever reads the failure.
            lost = re.search(r"x-seq (\d+) lost", self.server.output())
            lines = self.agent.lines
            at = next((i for i, l in enumerate(lines) if lost and f"sending POST x-seq {lost.group(1)} (" in l), len(lines))
            context = "\n".join(lines[max(0, at - 40):at + 10])
            self.fail(f"{stats}\n" + "\n".join(line for line in self.server.lines if "lost" in line) +
                      f"\nthe agent around it:\n{context}")
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


class SlowLink(LosslessCase):
    """20 ms each way, 100 Mbit/s: bodies trickle in, which widens the server's window."""
    link = (20, 100)

    def test_echo_bursts_across_a_slow_link(self):
        for mib in ((1, 4, 16, 64) if LONG else (1, 4)):
            with self.subTest(mib=mib):
                # Each is a new session: the second one starts from the round trip the first measured.
                self.echo(mib << 20, timeout=600 if LONG else 120)
        self.assert_nothing_lost()


class ThroughSquid(LosslessCase):
    """Through squid (CONNECT) on this side of a slow link, as a company proxy sits: squid takes a
    body at loopback speed and it crosses the link long after, while the agent's kernel saw it
    acknowledged at once; the agent must not take it for read by the server."""
    through_squid = True
    link = (20, 100)

    def test_echo_bursts_and_request_reply_through_squid_across_a_slow_link(self):
        for mib in (1, 2):
            with self.subTest(mib=mib):
                self.echo(mib << 20, timeout=180)
        with connect(self.port) as s:
            for i in range(100):
                message = f"command {i} ".encode() * 5
                self.assertEqual(exchange(s, message, timeout=20), message)
        stats = self.assert_nothing_lost()
        self.assertEqual(stats["out_of_order"], 0, "POSTs must reach the server in x-seq order")


class Sink:
    """A target that reads "RECV n", then n bytes, and only then answers "OK <sha256>" (an upload)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn):
        with conn:
            head = b""
            while not head.endswith(b"\n"):
                byte = conn.recv(1)
                if not byte:
                    return
                head += byte
            left, digest = int(head.split()[1]), hashlib.sha256()
            while left > 0:
                data = conn.recv(min(left, 1 << 20))
                if not data:
                    return
                digest.update(data)
                left -= len(data)
            conn.sendall(f"OK {digest.hexdigest()}\n".encode())
            conn.recv(1)

    def close(self):
        self.sock.close()


class Upload(LosslessCase):
    """A target that says nothing until it has all the bytes (an upload): every POST is released by a
    later request, never answered with data, so each must be settled before the next goes; bodies
    arrive whole and in x-seq order at a server that reads them 5 ms late."""

    def setUp(self):
        super().setUp()
        self.agent.stop()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.target = Sink()
        self.server, self.server_port = start_server(self.target.port, *self.server_args)
        if self.relay:
            self.relay.close()
            self.relay = Link(self.server_port, *self.link)
        self.agent, self.port = start_agent(self.relay.port if self.relay else self.server_port, "-v")

    def biggest_body(self):
        sizes = [int(m.group(1)) for m in map(re.compile(r"sending POST x-seq \d+ \((\d+) bytes\)").search,
                                                 self.agent.lines) if m]
        return max(sizes)

    def upload(self, size):
        payload = os.urandom(size)
        with connect(self.port) as s:
            s.settimeout(120)
            s.sendall(f"RECV {size}\n".encode() + payload)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                answer += chunk
        self.assertEqual(answer.decode().strip(), "OK " + hashlib.sha256(payload).hexdigest())

    def test_uploads_of_16_and_64_mib_arrive_whole_and_in_order(self):
        for mib in (16, 64):
            with self.subTest(mib=mib):
                self.upload(mib << 20)
        stats = self.assert_nothing_lost()
        self.assertEqual(stats["out_of_order"], 0, "POSTs must reach the server in x-seq order")
        self.assertEqual(stats["duplicates"], 0, stats)
        self.assertLessEqual(self.biggest_body(), 2 << 20, "on loopback a POST carries at most 2 MiB")


class UploadAcrossASlowLink(Upload):
    """The same across 20 ms each way and 100 Mbit/s, where an upload's POSTs grow to 8 MiB: each
    POST's fixed cost is a round trip and a settle time, spread over a bigger body."""
    link = (20, 100)

    def test_uploads_of_16_and_64_mib_arrive_whole_and_in_order(self):
        for mib in ((16, 64) if LONG else (16, 24)):
            with self.subTest(mib=mib):
                self.upload(mib << 20)
        stats = self.assert_nothing_lost()
        self.assertEqual(stats["out_of_order"], 0, "POSTs must reach the server in x-seq order")
        self.assertEqual(stats["duplicates"], 0, stats)
        self.assertEqual(self.biggest_body(), 8 << 20, "across a 40 ms round trip an upload's POSTs carry 8 MiB")


class TargetCloses(LosslessCase):
    """The target answers and closes at once (a JVM after a Dispose), across the slow link: the
    agent's next request may cross the server's 410s and make it open a new target connection,
    which the agent must close rather than leave to the server's 30 s disconnect timeout."""
    link = (20, 100)

    def test_no_target_connection_is_left_open_after_the_target_closes(self):
        for session in range(1, 4):
            with connect(self.port) as s:
                message = b"last words REPLY-AND-CLOSE"
                self.assertEqual(exchange(s, message, timeout=20), message)
            wait_until(lambda: self.agent.count(r"session \d+ .*(closed|failed) after") >= session, 30,
                       f"session {session} to end", self.agent.cond)
            self.assertEqual(self.agent.count(r"session \d+ .*failed after"), 0, self.agent.output())
            # Sent once, taken once: a 410 that overtook the reply is no reason to send it again.
            self.assertEqual(self.target.received, session * len(message), self.agent.output())
            wait_until(lambda: server_stats(self.server_port)["target_connections_open"] == 0, 10,
                       f"the server to hold no target connection once session {session} ended")
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


# What jdb prints once it stops at the breakpoint, for `print i`, and as the top frame of `where`.
LOCATION = re.compile(r'"thread=main", StressDebuggee\.tick\(\), line=7 bci=0')
VALUE = re.compile(r" i = \d+")
FRAME = re.compile(r"\[1\] StressDebuggee\.tick \(StressDebuggee\.java:7\)")


class DebuggerStress(unittest.TestCase):
    """A real JVM and a real jdb: a breakpoint hit again and again, the stack and a variable read at
    each hit (each jdb command is several JDWP commands), through the hostile server."""
    hits = 1000 if LONG else 60

    def run_stress(self, link, through_squid=False):
        self.assertTrue(shutil.which("java") and shutil.which("jdb"), "needs a JDK: scripts/setup installs it")
        jvm, jdwp_port = start_debuggee("StressDebuggee.java")
        server, server_port = start_server(jdwp_port, "--body-read-delay-ms", "5", "--long-poll-ms", "2000")
        relay = Link(server_port, *link) if link else None
        squid = Squid() if through_squid else None
        agent, port = start_agent(relay.port if relay else server_port, "-v",
                                  *(("--proxy", squid.url) if squid else ()))
        jdb = Process(["jdb", "-connect", f"com.sun.jdi.SocketAttach:hostname=127.0.0.1,port={port}"], stdin=True)
        try:
            try:
                jdb.wait_for_line(r"^> ", timeout=60)
                jdb.send("stop in StressDebuggee.tick\n")
                jdb.wait_for_line(r"Set breakpoint StressDebuggee\.tick", timeout=60)
                for hit in range(1, self.hits + 1):
                    if hit > 1:
                        jdb.send("cont\n")
                    # jdb prints "Breakpoint hit:" first and makes the thread current later, after JDWP
                    # round trips of its own; the location line comes once it has. A command sent before
                    # it fails in jdb ("No thread specified"), whatever the tunnel does.
                    wait_until(lambda: len(LOCATION.findall(jdb.output())) >= hit, 60, f"breakpoint hit {hit}",
                               jdb.cond)
                    jdb.send("where\nprint i\n")
                    wait_until(lambda: len(VALUE.findall(jdb.output())) >= hit, 60, f"print at hit {hit}", jdb.cond)
                jdb.send("clear StressDebuggee.tick\ncont\nquit\n")
                jdb.proc.wait(60)
                self.assertEqual(len(VALUE.findall(jdb.output())), self.hits)
                self.assertEqual(len(FRAME.findall(jdb.output())), self.hits, "each `where` shows the breakpoint")
            except AssertionError as failure:
                # What each side saw, so a stall can be told apart from a jdb that was not asked.
                raise AssertionError(f"{failure}\nserver counters {server_stats(server_port)}\n"
                                     f"--- jdb (last 3000 chars):\n{jdb.output()[-3000:]}\n"
                                     f"--- agent:\n" + "\n".join(agent.lines[-60:]) + "\n--- server:\n" +
                                     "\n".join(server.lines[-40:])) from None
            # The JVM closes when jdb leaves; a request that crossed that close makes the server open a
            # new connection to the JVM, which the agent must close (the server would keep it 30 s).
            agent.wait_for_line(r"session 1 .*closed after", timeout=30)
            wait_until(lambda: server_stats(server_port)["target_connections_open"] == 0, 10,
                       "the server to hold no connection to the JVM once the session ended")
            stats = server_stats(server_port)
            print(f"\n{self.id()}: {self.hits} breakpoint hits; server counters {stats}")
            self.assertEqual(stats["bodies_lost"], 0, stats)
            self.assertEqual(stats["queue_overflows"], 0, stats)
        finally:
            jdb.stop(signal.SIGKILL)
            code, _ = agent.stop()
            if squid:
                squid.stop()
            if relay:
                relay.close()
            server.stop(signal.SIGKILL)
            jvm.stop(signal.SIGKILL)
        self.assertEqual(code, 0, agent.output())

    def test_breakpoints_and_commands_on_loopback(self):
        self.run_stress(None)

    def test_breakpoints_and_commands_across_a_slow_link(self):
        self.run_stress((20, 100))

    def test_breakpoints_and_commands_through_squid_across_a_slow_link(self):
        self.run_stress((20, 100), through_squid=True)


if __name__ == "__main__":
    unittest.main()
