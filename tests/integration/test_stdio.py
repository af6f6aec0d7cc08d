"""--stdio: standard input and output carried through one session (ssh's ProxyCommand, scripts)."""
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import AGENT, ENDPOINT_PATH, sha256, start_server


class EchoThenClose:
    """A target that echoes what it reads and closes once `total` bytes came through."""

    def __init__(self, total):
        self.total = total
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            done = 0
            while done < self.total:
                data = conn.recv(1 << 16)
                if not data:
                    return
                conn.sendall(data)
                done += len(data)

    def close(self):
        self.sock.close()


class Stdio(unittest.TestCase):
    def start(self, total, *server_args):
        self.target = EchoThenClose(total)
        self.server, port = start_server(self.target.port, "--long-poll-ms", "1000", *server_args)
        self.url = f"http://127.0.0.1:{port}{ENDPOINT_PATH}"

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.target.close()

    def test_a_script_pipes_data_through_and_gets_every_byte_back(self):
        data = os.urandom(8 << 20)
        self.start(len(data))
        # stdin ends long before the echo does: as netcat, the output keeps coming until the target closes.
        run = subprocess.run([AGENT, "--stdio", "-v", self.url], input=data, capture_output=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr.decode())
        self.assertEqual(len(run.stdout), len(data), run.stderr.decode()[-2000:])
        self.assertEqual(sha256(run.stdout), sha256(data))
        # It ends when the target closes, or (when the server cannot tell that it did: the target may close
        # while the server holds no request of ours) once the target said nothing for --stdio-linger.
        self.assertRegex(run.stderr.decode(), r"session 1 \(stdio\) closed after .*: (the target closed the connection "
                                              r"\(410 Gone\)|the input ended, and the target sent nothing for 2\.0 s)")

    def test_as_a_proxy_command_it_carries_a_conversation(self):
        messages = [f"line {i}\n".encode() * (i + 1) for i in range(50)]
        self.start(sum(len(m) for m in messages))
        agent = subprocess.Popen([AGENT, "--stdio", self.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        try:
            for message in messages:  # each answer read before the next question, as ssh does
                agent.stdin.write(message)
                agent.stdin.flush()
                got = b""
                while len(got) < len(message):
                    chunk = agent.stdout.read1(1 << 16)
                    self.assertTrue(chunk, "the agent's output ended early")
                    got += chunk
                self.assertEqual(got, message)
            agent.stdin.close()
            self.assertEqual(agent.wait(30), 0, agent.stderr.read().decode())
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            for stream in (agent.stdout, agent.stderr):
                stream.close()

    def test_after_the_input_ends_it_waits_the_linger_time_for_more_output(self):
        self.start(10 ** 9)  # this target never closes
        start = time.monotonic()
        run = subprocess.run([AGENT, "--stdio", "-v", "--stdio-linger", "1.5", self.url], input=b"ping",
                             capture_output=True, timeout=60)
        took = time.monotonic() - start
        self.assertEqual(run.returncode, 0, run.stderr.decode())
        self.assertEqual(run.stdout, b"ping")
        self.assertIn("the input ended, and the target sent nothing for 1.5 s after it", run.stderr.decode())
        self.assertGreaterEqual(took, 1.5)

    def test_a_failed_session_exits_1_with_its_reason(self):
        self.start(1, "--unavailable")
        run = subprocess.run([AGENT, "--stdio", self.url], input=b"hello", capture_output=True, timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertEqual(run.stdout, b"")
        self.assertIn("the target is not running (503 Service Unavailable)", run.stderr.decode())

    def test_files_on_both_sides_as_netcat_takes_them_and_nothing_on_stderr_when_all_went_well(self):
        # `tunnel-agent --stdio URL < request > reply`: libuv streams no files, so each goes through a bridge.
        data = os.urandom(3 << 20)
        self.start(len(data))
        with tempfile.TemporaryDirectory() as tmp:
            source, reply = os.path.join(tmp, "request"), os.path.join(tmp, "reply")
            with open(source, "wb") as f:
                f.write(data)
            with open(source, "rb") as stdin, open(reply, "wb") as stdout:
                run = subprocess.run([AGENT, "--stdio", self.url], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                                     timeout=120)
            with open(reply, "rb") as f:
                back = f.read()
        self.assertEqual(run.returncode, 0, run.stderr.decode())
        self.assertEqual(len(back), len(data))
        self.assertEqual(sha256(back), sha256(data))
        # Quiet by default in this mode (an ssh ProxyCommand's stderr is the user's terminal): no info lines.
        self.assertEqual(run.stderr.decode(), "")

    def test_stdin_from_dev_null_sends_nothing_and_ends_after_the_linger(self):
        self.start(1)
        with open(os.devnull, "rb") as stdin:
            run = subprocess.run([AGENT, "--stdio", "-v", "--stdio-linger", "0.5", self.url], stdin=stdin,
                                 capture_output=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr.decode())
        self.assertEqual(run.stdout, b"")
        self.assertIn("0 bytes sent", run.stderr.decode())

    def test_a_failure_still_prints_its_one_line_when_quiet(self):
        self.start(1, "--unavailable")
        run = subprocess.run([AGENT, "--stdio", self.url], input=b"hello", capture_output=True, timeout=60)
        self.assertEqual(run.returncode, 1)
        lines = run.stderr.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("error: session 1 (stdio) failed", lines[0])


if __name__ == "__main__":
    unittest.main()
