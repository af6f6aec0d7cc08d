"""The live status line: drawn under the log on a terminal (a pseudo-terminal here), absent when
stderr is a pipe; SIGUSR1 and --stats-interval log the same status as lines."""
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import unittest

from harness import AGENT, Process, Target, connect, exchange, start_server, wait_until


class PtyAgent:
    """The agent with its stdout and stderr on a pseudo-terminal; collects what it draws."""

    def __init__(self, args, columns=200):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.master = master
        self.proc = subprocess.Popen([AGENT, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                     env=dict(os.environ, TERM="xterm"))
        os.close(slave)
        self.cond = threading.Condition()
        self.raw = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO once the agent exits and the terminal's last holder is gone
                chunk = b""
            with self.cond:
                self.raw += chunk
                self.cond.notify_all()
            if not chunk:
                return

    def text(self):
        with self.cond:
            return self.raw.decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=15):
        regex = re.compile(pattern)
        try:
            return wait_until(lambda: regex.search(self.text()), timeout, pattern, self.cond)
        except AssertionError:
            raise AssertionError(f"no {pattern!r} within {timeout} s; the terminal got:\n{self.text()!r}")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(15)
        self.reader.join(5)
        os.close(self.master)
        return code


class StatusLine(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        self.server, self.server_port = start_server(self.target.port, "--long-poll-ms", "1000")
        self.url = f"http://127.0.0.1:{self.server_port}/.~~spring-boot!~/debug"

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.target.close()

    def test_on_a_terminal_the_status_line_shows_and_updates_in_place(self):
        agent = PtyAgent(["--listen", "127.0.0.1:0", self.url])
        try:
            port = int(agent.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            status = rf"  127\.0\.0\.1:{port} -> 127\.0\.0\.1:{self.server_port}\r\n"
            agent.wait_for(r"idle, waiting for a debugger" + status)
            with connect(port) as s:
                payload = b"x" * 100000
                self.assertEqual(exchange(s, payload), payload)
                # The line changes in place: the cursor goes back over it, clears, and draws it anew.
                m = agent.wait_for(r"\r\x1b\[1A\x1b\[J" +
                                   r"session 1 connected \d+s  up 97\.7 KiB  down 97\.7 KiB  rtt \d+ ms" + status)
                self.assertIsNotNone(m)
            agent.wait_for(r"idle, 1 session so far; session 1 ended: the local client closed the connection" + status)
        finally:
            code = agent.stop()
        self.assertEqual(code, 0, agent.text())
        # Ctrl-C erases the line before the shutdown's log lines, which then end the output.
        text = agent.text()
        self.assertRegex(text, r"\r\x1b\[1A\x1b\[J[0-9:.]+ tunnel-agent info: stopping \(Ctrl-C\)")
        self.assertNotIn(" -> ", text[text.index("stopping (Ctrl-C)"):])

    def test_a_narrow_terminal_gets_lines_cut_to_its_width(self):
        # A wrapped line would take two rows, and erasing one would leave the other behind.
        agent = PtyAgent(["--listen", "127.0.0.1:0", self.url], columns=30)
        try:
            line = agent.wait_for(r"tunnelling to [^\r]*\r\n(idle[^\r]*)\r\n").group(1)
            self.assertEqual(len(line), 29, line)
        finally:
            code = agent.stop()
        self.assertEqual(code, 0, agent.text())

    def test_at_80_columns_the_state_bytes_and_round_trip_come_before_the_addresses(self):
        agent = PtyAgent(["--listen", "127.0.0.1:0", self.url], columns=80)
        try:
            port = int(agent.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            with connect(port) as s:
                payload = b"x" * 100000
                self.assertEqual(exchange(s, payload), payload)
                line = agent.wait_for(r"\x1b\[J(session 1 connected [^\r]*)\r\n").group(1)
                self.assertLessEqual(len(line), 79, line)
                self.assertRegex(line, r"^session 1 connected \d+s  up 97\.7 KiB  down 97\.7 KiB  rtt \d+ ms  127\.")
            # After it, the idle line says how the last session went.
            agent.wait_for(r"idle, 1 session so far; session 1 ended: the local client")
        finally:
            code = agent.stop()
        self.assertEqual(code, 0, agent.text())

    def test_in_a_pipe_there_is_no_status_line_but_sigusr1_logs_it(self):
        agent = Process([AGENT, "--listen", "127.0.0.1:0", self.url], env={"TERM": "xterm"})
        try:
            port = int(agent.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            with connect(port) as s:
                self.assertEqual(exchange(s, b"ping"), b"ping")
                agent.proc.send_signal(signal.SIGUSR1)
                agent.wait_for_line(r"info: status: session 1 (connected|connecting) \d+s  up 4 B  down 4 B  rtt (\d+ ms|-)  "
                                    rf"127\.0\.0\.1:{port} -> 127\.0\.0\.1:{self.server_port}$")
        finally:
            code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        self.assertNotIn("\x1b[", agent.output())
        self.assertEqual(agent.count(r" -> "), 1, agent.output())  # only the SIGUSR1 line

    def test_stats_interval_logs_the_status_repeatedly_even_when_quiet(self):
        agent = Process([AGENT, "--listen", "127.0.0.1:0", "-q", "--stats-interval", "0.2", self.url])
        try:
            wait_until(lambda: agent.count(r"info: status: idle, waiting for a debugger  127\.0\.0\.1:\d+ -> ") >= 3,
                       15, "three status lines", agent.cond)
        finally:
            code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        self.assertEqual(agent.count(r"listening on"), 0)  # -q still holds for everything else


if __name__ == "__main__":
    unittest.main()
