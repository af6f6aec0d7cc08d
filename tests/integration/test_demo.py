"""scripts/run with no arguments, the demo README.md starts with, on a pseudo-terminal as a user runs
it: it says what it does while it builds, one Ctrl-C ends the agent gracefully, and a second demo
right after the first gets port 8000 again."""
import os
import pty
import re
import select
import signal
import socket
import time
import unittest

import harness

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Demo:
    """scripts/run as the session leader of a new pseudo-terminal: Ctrl-C typed there goes to its
    whole foreground process group, as in a terminal window."""

    def __init__(self):
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            env = dict(os.environ, TERM="xterm", http_proxy="", https_proxy="")
            os.execvpe("bash", ["bash", os.path.join(ROOT, "scripts", "run")], env)
        self.shown = bytearray()
        self.status = None

    def text(self):
        return self.shown.decode("utf-8", "replace")

    def read_until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.shown.extend(os.read(self.master, 65536))
                except OSError:  # the terminal's other side closed: the demo ended
                    break
        m = re.search(pattern, self.text())
        if not m:
            raise AssertionError(f"the demo did not show /{pattern}/ within {timeout} s:\n{self.text()}")
        return m

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                while True:  # what it wrote last is still in the terminal: read to its end
                    ready, _, _ = select.select([self.master], [], [], 1)
                    try:
                        chunk = os.read(self.master, 65536) if ready else b""
                    except OSError:
                        chunk = b""
                    if not chunk:
                        return
                    self.shown.extend(chunk)
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.shown.extend(os.read(self.master, 65536))
                except OSError:
                    pass
        raise AssertionError(f"the demo did not exit within {timeout} s of Ctrl-C:\n{self.text()}")

    def close(self):
        if self.status is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
        os.close(self.master)


class FirstFiveMinutes(unittest.TestCase):
    def run_demo(self, attach):
        demo = Demo()
        try:
            # What it does while it builds, before the first prompt.
            demo.read_until(r"demo: building tunnel-agent", 60)
            m = demo.read_until(r"tunnel-agent listens on 127\.0\.0\.1:(\d+)", 300)
            port = int(m.group(1))
            demo.read_until(r"listening on 127\.0\.0\.1:\d+", 30)
            if attach:
                with harness.connect(port) as s:
                    self.assertEqual(harness.jdwp_hello(s), b"JDWP-Handshake", demo.text())
                    demo.read_until(r"debugger attached", 30)
                    os.write(demo.master, b"\x03")  # Ctrl-C, typed at the terminal
                    demo.wait_exit(30)
            else:
                os.write(demo.master, b"\x03")
                demo.wait_exit(30)
            return port, demo.text()
        finally:
            demo.close()

    def test_one_ctrl_c_ends_the_demo_gracefully_and_port_8000_is_free_again(self):
        first_port, shown = self.run_demo(attach=True)
        self.assertIn("stopping (Ctrl-C)", shown)
        # The script passed the terminal's Ctrl-C on as a second one, and the agent exited at once.
        self.assertNotIn("second Ctrl-C", shown)
        self.assertRegex(shown, r"session 1 .*(closed|ended)")
        # The graceful end told the server to drop the JVM's connection: the server was still up
        # (before, the terminal's Ctrl-C stopped it too, first).
        self.assertNotIn("could not tell the server", shown)
        if first_port != 8000:
            # Only when something else on this machine holds 8000 (the demo then picks a free port).
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.assertRaises(OSError, probe.bind, ("127.0.0.1", 8000))
            return
        # The agent closed the debugger's connection first: 8000 has a connection in TIME-WAIT,
        # which the agent's own bind (SO_REUSEADDR) takes; the demo must not move off it.
        second_port, shown = self.run_demo(attach=False)
        self.assertEqual(second_port, 8000, shown)
        self.assertNotIn("second Ctrl-C", shown)


if __name__ == "__main__":
    unittest.main()
