"""Reliability: the agent against the test server's injected faults (tunnel-test-server --fault).
Recoverable faults must not break the session nor change a byte; unrecoverable ones must end it
with a message that names what broke, after delivering only a correct prefix of the stream."""
import os
import re
import signal
import socket
import threading
import time
import unittest

from harness import (SERVER, Process, Target, connect, exchange, live_output, read_until_closed, server_stats, sha256,
                     start_agent, start_server,
                     wait_until)

# 5% of all exchanges fail, in every way the protocol recovers from whatever the timing: the request
# never reached the server (a reset, a proxy's 502 or 504), or the server sat on it.
RECOVERABLE = {"drop-request": 0.02, "502": 0.015, "504": 0.015}
# Where each kind surely hits: the Nth request.
EACH_ONCE = {"drop-request": 20, "502": 80, "504": 110, "late": 40}
# A connection that dies while the server holds its request (mid-body: cut-post, counted over POSTs
# with a body; or after: drop-held) leaves the request held, on the reference as here: target data
# the server gives it before the agent's releases arrive is gone with the connection.
# (A request answered within its 0-2 ms meets no drop-held: three in a row, so that one surely does.)
DYING_HELD = ("cut-post@6", "drop-held@30", "drop-held@31", "drop-held@32", "cut-post:0.03", "drop-held:0.01")


def echo_what_arrives(sock, payload, timeout):
    """Sends `payload` while reading the echo; returns what came back before the end, however it ended."""
    got = bytearray()
    sock.settimeout(timeout)

    def reader():
        try:
            while len(got) < len(payload):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                got.extend(chunk)
        except OSError:
            pass
    t = threading.Thread(target=reader)
    t.start()
    try:
        sock.sendall(payload)
    except OSError:
        pass  # the session ended: what arrived is checked
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"echo of {len(payload)} bytes neither complete nor ended after {timeout} s\n" + live_output())
    return bytes(got)


class FaultTestCase(unittest.TestCase):
    server_faults = ()
    # A loss the agent cannot see (a body taken by data it could not tell from its answer) is
    # recovered after the stall time: short here, so that the test sees it happen.
    agent_args = ("--request-timeout", "2", "--stall-warning", "2")

    def start(self, *faults, seed=7):
        self.target = Target()
        args = ["--long-poll-ms", "300", "--late-ms", "3000", "--fault-seed", str(seed)]
        for fault in faults:
            args += ["--fault", fault]
        self.server, self.server_port = start_server(self.target.port, *args)
        self.agent, self.port = start_agent(self.server_port, *self.agent_args)

    def tearDown(self):
        code, _ = self.agent.stop()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.assertEqual(code, 0, f"agent exit code {code}; its output:\n{self.agent.output()}")


class RecoverableFaults(FaultTestCase):
    def test_16_mib_each_way_arrive_intact_while_5_percent_of_exchanges_fail(self):
        # 16 MiB, not 64: the server, like Spring's, keeps a reorder slot for good for every POST
        # sent again that it already had, 100 in all, and at 5% failures a long stream spends them
        # (docs/PROTOCOL-NOTES.md, known limits).
        # Each kind once at a fixed place as well, first (the first rule that hits wins): the random
        # draws depend on how requests interleave, and a kind never drawn would be a kind never met.
        self.start(*(f"{kind}@{n}" for kind, n in EACH_ONCE.items()),
                   *(f"{kind}:{rate}" for kind, rate in RECOVERABLE.items()), seed=20261121)
        payload = os.urandom(16 << 20)
        with connect(self.port) as s:
            back = exchange(s, payload, timeout=300)
        self.assertEqual(sha256(back), sha256(payload))
        self.agent.wait_for_line(r"session 1 \(.*\) closed after .* exchanges retried")
        self.assertEqual(self.agent.count(r"session 1 .* failed after"), 0, self.agent.output())
        # Met, not only drawn (drop-request, 502 and 504 act as drawn; late says when it held one).
        self.assertGreater(self.server.count(r"fault met: late:"), 0, "the agent never met a late fault")
        for kind in RECOVERABLE:
            self.assertGreater(self.server.count(rf"fault: {kind} on request"), 0, f"no {kind} fault was injected")
        self.assertEqual(self.server.count(r"answered into a dead connection"), 0, self.server.output())
        self.assertGreater(self.agent.count(r"trying again in \d+ ms"), 4)  # each kind above, met

    def test_a_connection_that_dies_while_held_mid_stream_breaks_nothing_silently(self):
        # Intact, or the session ends naming the payload the server answered into the dead
        # connection; either way the bytes that arrived are the stream's own, in order.
        self.start(*DYING_HELD, seed=20261202)
        payload = os.urandom(16 << 20)
        with connect(self.port) as s:
            got = echo_what_arrives(s, payload, timeout=300)
        self.assertEqual(sha256(got), sha256(payload[:len(got)]), "the bytes that arrived are not the stream's prefix")
        self.assertGreater(self.server.count(r"fault met: drop-held:"), 0, "the agent never met a drop-held fault")
        dead = re.findall(r"payload x-seq (\d+) answered into a dead connection", self.server.output())
        if len(got) == len(payload):
            # A whole stream met both faults. (One cut short by an early dead payload may end before
            # any cut-post fault is drawn: CI's ASan run saw it.)
            self.assertGreater(self.server.count(r"fault met: cut-post:"), 0, "the agent never met a cut-post fault")
            self.assertEqual(dead, [], self.server.output())
            self.agent.wait_for_line(r"session 1 \(.*\) closed after .* exchanges retried")
        else:
            self.assertTrue(dead, f"the echo broke after {len(got)} bytes with no payload lost by the server\n"
                                  + self.agent.output())
            # The agent names the first gap in the stream: the lowest lost x-seq, not the one the
            # server happened to log first (two held GETs die together and answer in any order).
            first = min(int(n) for n in dead)
            self.agent.wait_for_line(rf"session 1 \(.*\) failed after .*server payload x-seq {first} was lost")

    def test_payloads_sent_in_swapped_order_are_put_back_in_order(self):
        self.start("seq-swap@2", "seq-swap@5")
        payload = os.urandom(4 << 20)
        with connect(self.port) as s:
            back = exchange(s, payload)
        self.assertEqual(sha256(back), sha256(payload))
        self.assertEqual(self.server.count(r"fault met: seq-swap: x-seq \d+ went out before"), 2, self.server.output())

    def test_the_agent_gives_up_after_the_retry_window_naming_the_last_failure(self):
        self.agent_args = ("--request-timeout", "2", "--retry-window", "1.5")
        # The first three requests reach the tunnel (a first session sends two GETs, then the POST:
        # its release of a GET bounds the round trip), all later ones fail.
        self.start("502@4+")
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"hello"), b"hello")
            s.settimeout(15)
            self.assertEqual(s.recv(100), b"")  # then the session ends
        m = self.agent.wait_for_line(r"session 1 .* failed after .*: HTTP 502 Bad Gateway .*gave up after (\d+) "
                                     r"failed exchanges in a row over ([\d.]+) s: the next try, in ([\d.]+) s, "
                                     r"would end outside --retry-window 1.5 s")
        failures, spent, next_wait = int(m.group(1)), float(m.group(2)), float(m.group(3))
        self.assertGreaterEqual(failures, 3)
        self.assertLessEqual(spent, 1.5)
        # Not before the window is spent: the wait it refused would have ended outside it.
        self.assertGreater(spent + next_wait, 1.5 - 0.01, "gave up with time left in the retry window")


class UnrecoverableFaults(FaultTestCase):
    """One fault on the 3rd server payload; the stream before it arrives intact, nothing after."""
    CASES = {
        "cut-body": r"server payload x-seq 3 was cut off after \d+ of \d+ bytes",
        "cl-long": r"server payload x-seq 3 was cut off after (\d+) of \d+ bytes",
        "cl-short": r"server payload x-seq 3 carried more bytes than its Content-Length \(\d+\) declared",
        "cl-huge": r"the server's answer \(x-seq 3\) declares 1000000000000000 bytes, more than a tunnel payload",
        "close-cut": r"server payload x-seq 3 \(500 bytes\) came without a Content-Length or chunked framing",
        "seq-dup": r"the server repeated x-seq 2 \(expected 3\)",
        "seq-skip": r"server payload x-seq 3 was lost \(later ones arrived, it did not\)",
        "seq-text": r"the server sent a malformed x-seq 'abc'",
        "seq-zero": r"the server sent a malformed x-seq '0'",
        "seq-negative": r"the server sent a malformed x-seq '-3'",
        "seq-missing": r"the server answered 200 without an x-seq header",
    }

    def test_each_malformed_answer_ends_the_session_with_its_message_and_a_correct_prefix(self):
        for fault, message in self.CASES.items():
            with self.subTest(fault=fault):
                self.start(f"{fault}@3")
                try:
                    self.check_one(message)
                finally:
                    self.tearDown()

    def check_one(self, message):
        payload = os.urandom(2 << 20)
        received = bytearray()
        with connect(self.port) as s:
            # Messages one after another, each waiting for its echo: every server payload is one
            # message, so payload 3 is the third message.
            for i in range(0, 16):
                chunk = payload[i * 1000:(i + 1) * 1000]
                s.sendall(chunk)
                s.settimeout(15)
                want = len(received) + len(chunk)
                while len(received) < want:
                    data = s.recv(65536)
                    if not data:
                        break
                    received.extend(data)
                else:
                    continue
                break
            s.settimeout(15)
            while True:  # the session ends: the agent closes the local connection
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received.extend(data)
        self.assertEqual(bytes(received), payload[:len(received)], "the bytes received are not a prefix")
        self.assertLess(len(received), 3000, "nothing after the faulty payload arrives")
        self.agent.wait_for_line(r"session 1 \(.*\) failed after .*" + message)
        # The agent keeps serving: the next local connection gets a fresh, working session.
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"next session", timeout=20), b"next session")


class DeadHeldRequests(FaultTestCase):
    def test_a_request_whose_connection_dies_while_held_is_released_before_data_comes(self):
        # drop-held on every 2nd request without a body: the connection dies while the server holds
        # the GET; the 3rd POST's connection dies mid-body. Between two messages no target data is on
        # its way, so the agent's releases surely come first. (Not drop-held on a POST: its target
        # echoes it at once, and that echo may beat any client's releases to the server, which then
        # answers it into the dead connection; CI met that once. FirstAnswerLost covers the loss.)
        self.start("drop-held-get@2", "drop-held-get@4", "drop-held-get@6", "cut-post@3")
        with connect(self.port) as s:
            for i in range(20):
                message = f"message {i}".encode()
                self.assertEqual(exchange(s, message, timeout=20), message)
        self.assertEqual(self.server.count(r"fault met: drop-held:"), 3, self.server.output())
        self.assertEqual(self.server.count(r"fault met: cut-post:"), 1, self.server.output())
        self.assertEqual(self.server.count(r"answered into a dead connection"), 0, self.server.output())


class FirstAnswerLost(FaultTestCase):
    def test_a_first_answer_lost_with_its_connection_is_said_and_the_gap_ends_the_session(self):
        # The target's first bytes go out on a held request whose connection has just died: gone,
        # and all the agent sees is a broken connection. No payload came before, so silence could be
        # a target that never talks; the stall warning must still say what may be lost.
        self.start("drop-answer@1")
        with connect(self.port) as s:
            s.sendall(b"message 0")
            self.server.wait_for_line(r"fault met: drop-answer: payload x-seq 1 answered into a dead connection")
            line = self.agent.wait_for_line(r"session 1: what the local client sent has waited \d+ s for an answer: "
                                            r"the last POST sent was x-seq 1; (a GET|POST x-seq 1) lost its connection "
                                            r"[\d.]+ s ago while the server held it: if the server answered it with the "
                                            r"target's bytes, they are gone", 15)
            # The next bytes come back as payload 2: the gap shows, and the session ends saying so
            # rather than hand the client a stream with a hole in it.
            s.sendall(b"message 1")
            s.settimeout(20)
            received = bytearray()
            while True:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received.extend(data)
        self.assertEqual(bytes(received), b"", "bytes after the hole were delivered")
        self.agent.wait_for_line(r"session 1 \(.*\) failed after .*x-seq", 10)
        # x-seq 1 is never sent again: nothing says the server lost its body, and a resend it had
        # would cost a reorder slot for good. (x-seq 2, answered with the echo before its body was
        # surely read, may go again as a suspect once payload 2 came: that is the suspects' rule, and
        # under load it does; CI saw it.)
        self.assertNotIn("again", line.string, "the warning before any payload resends nothing")
        self.assertEqual(self.agent.count(r"sending x-seq 1\b"), 0, "x-seq 1 was sent again:\n" + self.agent.output())


class LateAnswers(FaultTestCase):
    def test_a_request_the_server_sits_on_past_the_request_timeout_goes_again(self):
        self.start("late@3")
        with connect(self.port) as s:
            for i in range(30):
                message = f"message {i}".encode()
                self.assertEqual(exchange(s, message, timeout=20), message)
            self.agent.wait_for_line(r"session 1: (GET|POST x-seq \d+): .*Timeout was reached.*; trying again in \d+ ms", 10)
            self.assertEqual(exchange(s, b"after the timeout", timeout=20), b"after the timeout")
        self.assertEqual(self.server.count(r"fault: late on request 3"), 1)
        self.assertEqual(self.server.count(r"fault met: late:"), 1)


if __name__ == "__main__":
    unittest.main()


class Storms(unittest.TestCase):
    """A gateway in front of the server that answers every request at once with 429 (rate-limiting)
    or with an empty 204 (a cache): before, the agent sent about 9,000 requests a second and said
    nothing. Now its requests slow down to a capped pause, and it says so once, naming the answers."""

    def storm(self, status):
        target = Target()
        server, server_port = start_server(target.port, "--long-poll-ms", "2000", "--fault", f"{status}@1+")
        agent, port = start_agent(server_port)
        try:
            with connect(port):
                agent.wait_for_line(rf"session 1: \d+ answers in a row came at once and carried nothing "
                                    rf"\({status} .* x\d+\).*slowing down")
                # The rate, over a window measured (not a wait for something to happen): at most one
                # request per 2 s once slowed; 5 a second is far above that and far below a storm.
                first, started = server_stats(server_port)["requests"], time.monotonic()
                time.sleep(4)
                sent = server_stats(server_port)["requests"] - first - 1  # that stats request itself
                rate = sent / (time.monotonic() - started)
                self.assertLess(rate, 5, f"{sent} requests in 4 s under a {status} storm\n" + agent.output())
                self.assertEqual(agent.count(r"answers in a row came at once"), 1, agent.output())
                self.assertEqual(agent.count(r"session 1 .*(failed|closed)"), 0, agent.output())
        finally:
            code, _ = agent.stop()
            server.stop(signal.SIGKILL)
            target.close()
        self.assertEqual(code, 0, agent.output())

    def test_a_429_storm_slows_the_agent_down_and_is_said_once(self):
        self.storm(429)

    def test_a_204_storm_slows_the_agent_down_and_is_said_once(self):
        self.storm(204)


class ServerRestart(unittest.TestCase):
    """The app redeployed mid-session: a new server on the same port, with a new target connection
    that expects x-seq 1. It queues the session's POSTs and applies none; before, the agent said
    nothing until the client gave up (120 s), then logged a normal close."""

    def test_a_server_restarted_mid_session_ends_it_naming_the_restart(self):
        target = Target()
        server, server_port = start_server(target.port, "--long-poll-ms", "1000")
        agent, port = start_agent(server_port, "--stall-warning", "2", "-v")
        try:
            with connect(port) as s:
                self.assertEqual(exchange(s, b"before", timeout=20), b"before")
                # Its POST answered too (else it goes again, to the new server, which applies it as
                # x-seq 1 and answers with its own x-seq 1: the agent sees that and ends at once).
                agent.wait_for_line(r"session 1: POST x-seq 1 \(6 bytes\) -> HTTP/1\.1 (200|204|429)", timeout=20)
                server.stop(signal.SIGKILL)
                # The held GET dies with it; its retries are refused while nothing listens.
                agent.wait_for_line(r"session 1: GET: .*[Cc]ould(n't| not) connect.*trying again in", timeout=20)
                server = start_server_on(server_port, target.port)
                s.sendall(b"after")
                line = agent.wait_for_line(r"session 1 \(.*\) failed after .*: the server refused connections \d+ s ago "
                                           r"and the target has answered nothing since \(the last POST sent was x-seq "
                                           r"\d+\): the server \(the app\) most likely restarted", timeout=30)
                self.assertIn("attach again", line.string)
                self.assertEqual(read_until_closed(s, timeout=10), b"")
        finally:
            code, _ = agent.stop()
            server.stop(signal.SIGKILL)
            target.close()
        self.assertEqual(code, 0, agent.output())


def start_server_on(port, target_port):
    """The test server again on a port it had: the same URL, a new server, as after a redeploy."""
    server = Process([SERVER, "--listen", f"127.0.0.1:{port}", "--target", f"127.0.0.1:{target_port}",
                      "--long-poll-ms", "1000"])
    server.wait_for_line(rf"^listening on 127\.0\.0\.1:{port}$")
    return server
