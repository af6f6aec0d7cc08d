"""The agent against the test server and real TCP targets, all on 127.0.0.1 with free ports."""
import json
import os
import re
import signal
import socket
import tempfile
import time
import unittest
import urllib.request

import harness
from harness import (Process, Target, connect, exchange, dead_port, read_until_closed, sha256, start_agent,
                     start_server, wait_until)


class TunnelTestCase(unittest.TestCase):
    """Starts a target, the test server and the agent; checks at the end that the agent exits 0 on
    Ctrl-C (under the sanitizers a leak or error report makes that exit code non-zero)."""
    server_args = ("--long-poll-ms", "1000")
    agent_args = ()
    agent_env = None
    echo = True

    def setUp(self):
        self.target = Target(echo=self.echo)
        self.server, self.server_port = start_server(self.target.port, *self.server_args)
        self.agent, self.port = start_agent(self.server_port, *self.agent_args, env=self.agent_env)

    def tearDown(self):
        code, _ = self.agent.stop()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.assertEqual(code, 0, f"agent exit code {code}; its output:\n{self.agent.output()}")


class RoundTrips(TunnelTestCase):
    def test_random_data_comes_back_byte_identical_both_directions_at_once(self):
        for size in (1, 64 * 1024, 16 * 1024 * 1024):
            with self.subTest(size=size):
                payload = os.urandom(size)
                with connect(self.port) as s:
                    back = exchange(s, payload)
                self.assertEqual(len(back), size)
                self.assertEqual(sha256(back), sha256(payload))
        # Each local connection had its own target connection, and the agent dropped each one.
        self.target.wait_closed(3)
        self.assertEqual(len(self.target.opened), 3)
        self.assertEqual(self.agent.count(r"error"), 0, self.agent.output())

    def test_many_small_request_reply_exchanges(self):
        with connect(self.port) as s:
            for i in range(300):
                message = f"command {i} ".encode() * 3
                self.assertEqual(exchange(s, message, timeout=10), message)


class ShortUrl(TunnelTestCase):
    """No '!' to type: a bare host:port gets http:// and the endpoint path, and the line that says
    where the agent tunnels names the whole URL it uses."""

    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port, *self.server_args)
        self.agent, self.port = start_agent(0, url=f"127.0.0.1:{self.server_port}")

    def test_a_bare_host_and_port_reach_the_endpoint(self):
        self.agent.wait_for_line(rf"tunnelling to http://127\.0\.0\.1:{self.server_port}/\.~~spring-boot!~/debug$")
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"no bang typed"), b"no bang typed")


class LongPolls(TunnelTestCase):
    server_args = ("--long-poll-ms", "200")
    agent_args = ("-v",)

    def test_session_survives_several_empty_long_polls(self):
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"before"), b"before")
            polls = self.agent.count(r"GET -> HTTP/1.1 204")
            wait_until(lambda: self.agent.count(r"GET -> HTTP/1.1 204") >= polls + 4, 15, "four 204 answers")
            payload = os.urandom(200_000)
            self.assertEqual(sha256(exchange(s, payload)), sha256(payload))
        self.assertEqual(len(self.target.opened), 1, "the session kept one target connection throughout")


class TargetEnds(TunnelTestCase):
    def test_target_close_gives_410_and_closes_the_local_socket(self):
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"hello"), b"hello")
            s.sendall(b"CLOSE-NOW")  # the target closes its side on this
            read_until_closed(s)
        self.agent.wait_for_line(r"session 1 .*closed.*: the target closed the connection \(410 Gone\)$")
        # The agent serves the next connection as usual.
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"again"), b"again")


class FailingSessions(unittest.TestCase):
    """Each test runs one local connection that the server cannot serve, and reads the agent's line."""

    def failed_session(self, *server_args, target_port=None, path=None):
        """Returns the agent's "session 1 ... failed" line, after the local socket was closed."""
        self.target = Target()
        self.server, self.server_port = start_server(target_port or self.target.port, *server_args)
        extra = {"path": path} if path else {}
        self.agent, port = start_agent(self.server_port, **extra)
        with connect(port) as s:
            s.sendall(b"JDWP-Handshake")
            read_until_closed(s)
        return self.agent.wait_for_line(r"session 1 .*failed").string

    def tearDown(self):
        code, _ = self.agent.stop()
        self.server.stop(signal.SIGKILL)
        self.target.close()
        self.assertEqual(code, 0, self.agent.output())

    def test_refused_target_connection_gives_410(self):
        line = self.failed_session(target_port=dead_port())
        self.assertIn("the server could not reach the target, or the target closed at once (410 Gone)", line)
        self.assertIn("is the JVM listening on its debug port", line)
        self.server.wait_for_line(r"target connection to .* failed")

    def test_503_ends_the_session_with_a_clear_message(self):
        line = self.failed_session("--unavailable")
        self.assertIn("the target is not running (503 Service Unavailable)", line)
        self.assertIn("-agentlib:jdwp", line)
        # A 503 ends the session at once: no request after the ones already out (a GET and a POST;
        # the server counts this stats request too).
        with urllib.request.urlopen(f"http://127.0.0.1:{self.server_port}/.tunnel-test-server/stats", timeout=10) as r:
            self.assertLessEqual(json.loads(r.read())["requests"] - 1, 2)

    def assert_backed_off(self, attempt, wait, failed):
        """Session `attempt` (a new local connection) waits `wait` s from the end of the session before
        it, says how much of that is left when it opens, and waits it: from the previous session's end
        to this one's `failed` line (a pattern) at least that long (log times, midnight-proof)."""
        with connect(self.port_of_agent()) as s:
            s.sendall(b"JDWP-Handshake")
            read_until_closed(s, timeout=15)
        stamp = r"^(\d+):(\d+):([\d.]+) .*"
        said = self.agent.wait_for_line(rf"{stamp}session {attempt}: the target was not running or not reachable at "
                                        rf"the last attempt; asking the server again in ([\d.]+) s")
        before = self.agent.wait_for_line(rf"{stamp}session {attempt - 1} .*failed after")
        ended = self.agent.wait_for_line(rf"{stamp}session {attempt} .*{failed}")
        at = [int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) for m in (before, said, ended)]
        gap = (at[1] - at[0]) % 86400  # the client connected again this long after the last session ended
        left = float(said.group(4))
        self.assertLessEqual(left, float(wait), said.string)
        self.assertGreaterEqual(left, float(wait) - gap - 0.15, f"{said.string} ({gap:.3f} s after the last session)")
        self.assertGreaterEqual((at[2] - at[0]) % 86400, float(wait) * 0.9, "the back-off was not waited")

    def test_after_a_503_the_next_session_backs_off_before_asking_again(self):
        self.failed_session("--unavailable")
        for attempt, wait in ((2, "1.0"), (3, "2.0")):
            self.assert_backed_off(attempt, wait, r"failed.*503")
        # The agent itself carries on.
        self.assertIsNone(self.agent.proc.poll())

    def test_a_refused_target_backs_off_as_a_503_does(self):
        # Nothing listens on the target port: the server answers 410 at once. Without a back-off a
        # client that reconnects made 10 to 16 requests a second.
        line = self.failed_session(target_port=dead_port())
        self.assertIn("the server could not reach the target", line)
        self.assert_backed_off(2, "1.0", r"failed.*could not reach the target")

    def port_of_agent(self):
        return int(self.agent.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))

    def test_a_non_tunnel_answer_names_the_status_and_the_url(self):
        line = self.failed_session(path="/not-the-endpoint")
        self.assertIn(f"unexpected answer from http://127.0.0.1:{self.server_port}/not-the-endpoint/.~~spring-boot!~/debug: "
                      "HTTP 404 Not Found", line)
        self.assertIn("check the URL's path", line)


class Secrets(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        self.secret_file = tempfile.NamedTemporaryFile("w", suffix=".secret", delete=False)
        self.secret_file.write("s3cr3t-value-42\n")
        self.secret_file.close()
        self.server, self.server_port = start_server(self.target.port, "--secret-file", self.secret_file.name)

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.target.close()
        os.unlink(self.secret_file.name)

    def run_agent(self, env, *args):
        agent, port = start_agent(self.server_port, *args, env=env)
        return agent, port

    def test_wrong_secret_is_refused_with_a_clear_message(self):
        agent, port = self.run_agent({"TUNNEL_AGENT_SECRET": "wrong-guess"})
        with connect(port) as s:
            read_until_closed(s)
        line = agent.wait_for_line(r"session 1 .*failed").string
        self.assertIn("the server refused the secret (403", line)
        self.assertIn("TUNNEL_AGENT_SECRET", line)
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        self.assertNotIn("wrong-guess", agent.output())

    def test_missing_secret_is_refused(self):
        agent, port = self.run_agent({"TUNNEL_AGENT_SECRET": ""})
        with connect(port) as s:
            read_until_closed(s)
        self.assertIn("no secret was given", agent.wait_for_line(r"session 1 .*failed").string)
        self.assertEqual(agent.stop()[0], 0)

    def test_right_secret_from_file_works_and_is_never_printed(self):
        agent, port = self.run_agent({"TUNNEL_AGENT_SECRET": ""}, "--secret-file", self.secret_file.name, "-vv")
        with connect(port) as s:
            self.assertEqual(exchange(s, b"ping"), b"ping")
        agent.wait_for_line(r"session 1 .*closed")
        code, _ = agent.stop()
        self.assertEqual(code, 0)
        output = agent.output()
        self.assertIn("X-AUTH-TOKEN: ***", output)  # the -vv trace shows the header, masked
        self.assertNotIn("s3cr3t-value-42", output)


class JsonLogs(TunnelTestCase):
    agent_args = ("--log-format", "json", "-v")

    def test_every_log_line_is_a_json_object(self):
        import json
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"ping"), b"ping")
        self.agent.wait_for_line(r'"message":"session 1 \(.*\) closed after')
        self.agent.stop()
        records = [json.loads(line) for line in self.agent.lines if line.strip()]
        self.assertGreater(len(records), 3)
        for record in records:
            self.assertEqual(set(record), {"time", "level", "message"})
            self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(record["level"], ("debug", "info", "warning", "error"))
        self.assertTrue(any(r["message"].startswith("listening on 127.0.0.1:") for r in records))
        # -v: the exchanges, at least the x-disconnect the session ends with.
        self.assertTrue(any(r["level"] == "debug" and "POST x-disconnect -> HTTP/1.1 410" in r["message"]
                            for r in records), records)


class Lifecycle(TunnelTestCase):
    def test_a_plain_client_gets_a_connected_line_and_no_debugger_lines(self):
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"hello"), b"hello")
        self.agent.wait_for_line(r"session 1: connected to the target after \d+ ms")
        self.agent.wait_for_line(r"session 1 .*closed after .*: the local client closed the connection")
        self.assertEqual(self.agent.count(r"debugger|JDWP"), 0, self.agent.output())
        self.assertEqual(self.agent.count(r"connected to the target"), 1, self.agent.output())

    def test_a_debugger_detaching_is_named(self):
        # The echo target answers the handshake with the same 14 bytes, as a JVM does.
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"JDWP-Handshake"), b"JDWP-Handshake")
            self.agent.wait_for_line(r"session 1: debugger attached: the JVM answered the JDWP handshake")
        self.agent.wait_for_line(r"session 1 .*closed after .*: the debugger detached")
        self.assertEqual(self.agent.count(r"connected to the target"), 0, self.agent.output())


class NotAJdwpPort(unittest.TestCase):
    def test_a_target_that_answers_the_handshake_with_something_else_is_named(self):
        listener = socket.create_server(("127.0.0.1", 0))

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.recv(64)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                conn.recv(64)  # until the server drops it
        import threading
        threading.Thread(target=serve, daemon=True).start()
        server, server_port = start_server(listener.getsockname()[1], "--long-poll-ms", "1000")
        agent, port = start_agent(server_port)
        try:
            with connect(port) as s:
                s.sendall(b"JDWP-Handshake")
                self.assertEqual(s.recv(64)[:4], b"SSH-")  # carried as it is
                agent.wait_for_line(r"session 1: the target answered the debugger's JDWP handshake with something "
                                    r"else: the server's target is not a JDWP port")
        finally:
            code, _ = agent.stop()
            server.stop(signal.SIGKILL)
            listener.close()
        self.assertEqual(code, 0, agent.output())


class Disconnect(TunnelTestCase):
    def test_local_close_makes_the_server_drop_the_target_within_1s(self):
        with connect(self.port) as s:
            self.assertEqual(exchange(s, b"hello"), b"hello")
            self.target.wait_opened(1)
            closed_at = time.monotonic()
        self.target.wait_closed(1, timeout=5)
        self.assertLess(self.target.closed[0] - closed_at, 1.0)
        self.server.wait_for_line(r"target connection 1 closed: x-disconnect")


class HalfClose(TunnelTestCase):
    """A client that sends its request and shuts its write side (nc -N, many scripts) still gets the
    answer: before, the session ended at the EOF and the client got 0 bytes back."""

    def test_the_answer_reaches_a_client_that_shut_its_write_side(self):
        payload = os.urandom(1 << 20)
        with connect(self.port) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            back = read_until_closed(s, timeout=30)
        self.assertEqual(len(back), len(payload))
        self.assertEqual(sha256(back), sha256(payload))
        self.agent.wait_for_line(r"session 1 \(.*\) closed after .*: the local client closed the connection \(or its "
                                 r"sending side\), and the target sent nothing for 2\.0 s after it")

    def test_a_client_that_closes_before_reading_the_answer_ends_the_session_cleanly(self):
        # The same EOF from a client that closed for good: the answer finds it gone, and that is no error.
        with connect(self.port) as s:
            s.sendall(os.urandom(256 << 10))
        self.agent.wait_for_line(r"session 1 \(.*\) closed after .*: the local client closed the connection")
        self.assertEqual(self.agent.count(r"session 1 .* failed"), 0, self.agent.output())
        self.target.wait_closed(1, timeout=10)


class Busy(TunnelTestCase):
    def test_second_connection_waits_for_the_first(self):
        first = connect(self.port)
        self.assertEqual(exchange(first, b"first"), b"first")
        second = connect(self.port)
        self.agent.wait_for_line(r"local connection from 127\.0\.0\.1:\d+ waits: session 1 is still running")
        second.sendall(b"second")
        first.close()
        second.settimeout(10)
        echoed = b""
        while len(echoed) < 6:
            chunk = second.recv(6 - len(echoed))
            if not chunk:
                break
            echoed += chunk
        self.assertEqual(echoed, b"second")
        self.target.wait_opened(2)
        # Each client's bytes on a target connection of its own: none of "second" went out while the
        # first session ran (the server shares one target connection, so it would have joined "first").
        self.assertEqual([bytes(d) for d in self.target.data], [b"first", b"second"])
        lines = self.agent.lines
        first_closed = next(i for i, l in enumerate(lines) if re.search(r"session 1 \(.*\) closed", l))
        second_opened = next(i for i, l in enumerate(lines) if "session 2: opened" in l)
        self.assertGreater(second_opened, first_closed, "the second session began only after the first ended")
        second.close()

    def test_a_waiting_connection_that_goes_away_frees_its_place_and_one_that_half_closed_gets_its_answer(self):
        first = connect(self.port)
        self.assertEqual(exchange(first, b"first"), b"first")
        pid = self.agent.proc.pid
        fds_before = len(os.listdir(f"/proc/{pid}/fd"))
        gone = [connect(self.port) for _ in range(5)]
        asker = connect(self.port)
        wait_until(lambda: self.agent.count(r"waits: session 1 is still running") == 6, 10, "six waiting",
                   self.agent.cond)
        asker.sendall(b"question")
        asker.shutdown(socket.SHUT_WR)
        for s in gone:
            s.close()
        # Dropped while the first session still runs: their descriptors are free for it.
        wait_until(lambda: self.agent.count(r"local connection from 127\.0\.0\.1:\d+ closed while it waited; it is "
                                            r"dropped") == 5, 10, "the five to be dropped", self.agent.cond)
        # (waited on: the first session's HTTP connections may come and go meanwhile; the five do not)
        wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= fds_before + 1, 10,
                   f"at most {fds_before + 1} descriptors open (the asker's added)")
        self.assertEqual(self.agent.count(r"session \d+ \(.*\) (closed|failed) after"), 0, self.agent.output())
        first.close()
        asker.settimeout(10)
        self.assertEqual(read_until_closed(asker, timeout=15), b"question")
        asker.close()
        self.target.wait_opened(2)
        self.assertEqual([bytes(d) for d in self.target.data], [b"first", b"question"])


class TwoForwardsOneEndpoint(unittest.TestCase):
    def test_two_forwards_to_one_url_take_turns_and_never_mix_their_clients(self):
        target = Target()
        server, server_port = start_server(target.port, "--long-poll-ms", "1000")
        url = f"http://127.0.0.1:{server_port}{harness.ENDPOINT_PATH}"
        agent = Process([harness.AGENT, "-L", f"0={url}", "-L", f"0={url}"], env={"http_proxy": ""})
        try:
            wait_until(lambda: agent.count(r"listening on 127\.0\.0\.1:\d+, tunnelling") == 2, 10,
                       "both forwards listening", agent.cond)
            ports = [int(p) for p in re.findall(r"listening on 127\.0\.0\.1:(\d+), tunnelling", agent.output())]
            with connect(ports[0]) as a:
                self.assertEqual(exchange(a, b"AAAA-0"), b"AAAA-0")
                with connect(ports[1]) as b:
                    b.sendall(b"BBBB-0")  # must wait: the endpoint is busy with the other forward
                    agent.wait_for_line(rf"waits: the forward on 127\.0\.0\.1:{ports[0]} has a session to the same "
                                        r"endpoint")
                    self.assertEqual(exchange(a, b"AAAA-1"), b"AAAA-1")
                    a.close()
                    b.settimeout(20)
                    back = b""
                    while len(back) < 6:
                        chunk = b.recv(6 - len(back))
                        if not chunk:
                            break
                        back += chunk
                    self.assertEqual(back, b"BBBB-0")
            # With two forwards, each session is named after its forward's port: a line is traced to it.
            for port in ports:
                wait_until(lambda: agent.count(rf"session {port}#1 \(127\.0\.0\.1:\d+\) closed after") == 1, 20,
                           f"the session of the forward on {port} to end", agent.cond)
            self.assertEqual(agent.count(r"session \d+[:( ]"), 0, agent.output())
            # Each client had a target connection of its own, carrying its bytes only.
            with target.cond:
                streams = [bytes(d) for d in target.data]
            self.assertEqual(streams, [b"AAAA-0AAAA-1", b"BBBB-0"], agent.output())
        finally:
            agent.stop()
            server.stop(signal.SIGKILL)
            target.close()


class BusyRefuse(TunnelTestCase):
    agent_args = ("--on-busy=refuse",)

    def test_second_connection_is_refused(self):
        with connect(self.port) as first:
            self.assertEqual(exchange(first, b"first"), b"first")
            with connect(self.port) as second:
                self.assertEqual(read_until_closed(second, timeout=5), b"")
            self.agent.wait_for_line(r"refused local connection from 127\.0\.0\.1:\d+: session 1 is still running "
                                     r"and --on-busy=refuse is set")
            self.assertEqual(exchange(first, b"still fine"), b"still fine")


class LoopbackOnly(unittest.TestCase):
    def test_default_listener_is_not_reachable_on_another_address(self):
        target = Target()
        server, server_port = start_server(target.port)
        # The default host with a free port (the default port 8000 may be taken on a test machine).
        agent = Process([os.environ["TUNNEL_AGENT"], "--listen", "0", f"http://127.0.0.1:{server_port}/x"])
        wide = Process([os.environ["TUNNEL_AGENT"], "--listen", "0.0.0.0:0", f"http://127.0.0.1:{server_port}/x"])
        try:
            port = int(agent.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            wide_port = int(wide.wait_for_line(r"listening on 0\.0\.0\.0:(\d+)").group(1))
            # 127.0.0.2 is another local address (all of 127/8 is this machine): a listener bound to
            # 127.0.0.1 must refuse it, one bound to every address must accept it.
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.2", port), timeout=5)
            socket.create_connection(("127.0.0.2", wide_port), timeout=5).close()
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            # The wide one says what it exposes; the loopback one says nothing of the kind.
            wide.wait_for_line(rf"warning: 0\.0\.0\.0:{wide_port} is reachable from other machines: whoever "
                               r"connects to it gets the debug port of the JVM behind 127\.0\.0\.1:\d+")
            self.assertEqual(agent.count(r"reachable from other machines"), 0, agent.output())
        finally:
            codes = [agent.stop()[0], wide.stop()[0]]
            server.stop(signal.SIGKILL)
            target.close()
        self.assertEqual(codes, [0, 0])


class CtrlC(TunnelTestCase):
    def test_ctrl_c_exits_0_within_2s_and_leaves_no_session_behind(self):
        s = connect(self.port)
        self.assertEqual(exchange(s, b"busy"), b"busy")
        self.target.wait_opened(1)
        code, took = self.agent.stop(signal.SIGINT)
        self.assertEqual(code, 0, self.agent.output())
        self.assertLess(took, 2.0)
        self.target.wait_closed(1, timeout=10)  # the server dropped the target: x-disconnect was sent
        self.server.wait_for_line(r"target connection 1 closed: x-disconnect")
        self.assertEqual(read_until_closed(s, timeout=10), b"")
        s.close()

    def test_sigterm_with_no_session_exits_0(self):
        code, took = self.agent.stop(signal.SIGTERM)
        self.assertEqual(code, 0)
        self.assertLess(took, 2.0)


class StartupErrors(unittest.TestCase):
    def test_port_in_use_is_one_clear_line_and_exit_1(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        agent = Process([os.environ["TUNNEL_AGENT"], "--listen", f"127.0.0.1:{port}", "http://127.0.0.1:9/x"])
        self.assertEqual(agent.proc.wait(10), 1)
        agent.stop()
        errors = [l for l in agent.lines if "error" in l]
        self.assertEqual(len(errors), 1, agent.output())
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", errors[0])
        self.assertIn("pick another with --listen", errors[0])
        blocker.close()

    def test_bad_url_and_unknown_option_exit_2(self):
        for args, expected in ((["ftp://x/y"], "the scheme must be http or https"),
                               (["--bogus", "http://x/"], "--help")):
            agent = Process([os.environ["TUNNEL_AGENT"], *args])
            self.assertEqual(agent.proc.wait(10), 2)
            agent.stop()
            self.assertIn(expected, agent.output())

    def test_unreachable_endpoint_names_the_url_and_what_to_check(self):
        port = dead_port()
        agent, local = start_agent(port)
        with connect(local) as s:
            read_until_closed(s)
        line = agent.wait_for_line(r"session 1 .*failed").string
        self.assertIn(f"HTTP request to http://127.0.0.1:{port}/", line)
        self.assertIn("check the URL and that the server is running", line)
        self.assertEqual(agent.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
