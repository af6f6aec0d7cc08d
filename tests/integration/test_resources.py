"""Bounded resources: a session's memory stays under a fixed ceiling with a fast sender and a slow
reader on both sides at once (docs/PROTOCOL-NOTES.md states the ceiling), and the stream still
arrives intact. Resident memory is only meaningful without the sanitizers' own allocator."""
import hashlib
import os
import signal
import socket
import threading
import time
import unittest

from harness import (AGENT, ENDPOINT_PATH, Process, Target, connect, exchange, start_agent, start_server,
                     wait_until)

CEILING_MIB = 40  # agent resident memory: ~14 MiB of libraries + at most ~20 MiB of session buffers
SIZE = 48 << 20


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def slow_reader(sock, total, digest, done):
    """Reads `total` bytes in 64 KiB steps, 10 ms apart: far slower than the other side sends. (The
    pause is the slowness under test, not a wait for something.)"""
    got = 0
    sock.settimeout(120)
    while got < total:
        chunk = sock.recv(65536)
        if not chunk:
            break
        digest.update(chunk)
        got += len(chunk)
        time.sleep(0.01)
    done.append(got)


def fast_sender(sock, data):
    sock.sendall(data)


class FastSenderSlowReader(unittest.TestCase):
    def setUp(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.server, server_port = start_server(self.listener.getsockname()[1], "--long-poll-ms", "1000")
        self.agent, self.port = start_agent(server_port)

    def tearDown(self):
        code, _ = self.agent.stop()
        self.server.stop(signal.SIGKILL)
        self.listener.close()
        self.assertEqual(code, 0, self.agent.output())

    def test_memory_stays_under_the_ceiling_with_both_sides_flooding_and_reading_slowly(self):
        up, down = os.urandom(SIZE), os.urandom(SIZE)
        client = connect(self.port, timeout=120)
        self.listener.settimeout(10)
        client.sendall(b"x")  # the first request opens the target connection
        target, _ = self.listener.accept()
        self.assertEqual(target.recv(1), b"x")
        up_digest, down_digest = hashlib.sha256(), hashlib.sha256()
        up_done, down_done = [], []
        threads = [threading.Thread(target=fast_sender, args=(client, up), daemon=True),
                   threading.Thread(target=fast_sender, args=(target, down), daemon=True),
                   threading.Thread(target=slow_reader, args=(target, SIZE, up_digest, up_done), daemon=True),
                   threading.Thread(target=slow_reader, args=(client, SIZE, down_digest, down_done), daemon=True)]
        for t in threads:
            t.start()
        peak = 0.0
        pid = self.agent.proc.pid
        deadline = time.monotonic() + 180
        for reader in threads[2:]:
            # Sample the agent's memory every 50 ms until each slow reader has everything.
            while reader.is_alive() and time.monotonic() < deadline:
                peak = max(peak, rss_mib(pid))
                reader.join(0.05)
        client.close()
        target.close()
        self.assertEqual(up_done, [SIZE], self.agent.output()[-3000:] + self.server.output()[-2000:])
        self.assertEqual(down_done, [SIZE])
        self.assertEqual(up_digest.hexdigest(), hashlib.sha256(up).hexdigest())
        self.assertEqual(down_digest.hexdigest(), hashlib.sha256(down).hexdigest())
        print(f"\npeak agent RSS {peak:.1f} MiB with {SIZE >> 20} MiB each way, both readers slow")
        if not sanitized(pid):
            self.assertLess(peak, CEILING_MIB)


class ManySessions(unittest.TestCase):
    def test_300_sessions_in_a_row_leave_no_file_descriptors_or_memory_behind(self):
        target = Target()
        server, server_port = start_server(target.port, "--long-poll-ms", "1000")
        agent, port = start_agent(server_port)
        pid = agent.proc.pid
        asan = sanitized(pid)
        try:
            samples = []
            for i in range(1, 301):
                with connect(port) as s:
                    message = f"session {i}".encode()
                    self.assertEqual(exchange(s, message, timeout=20), message)
                wait_until(lambda: agent.count(r"session \d+ \(.*\) closed after") >= i, 20, f"session {i} closed",
                           agent.cond)
                if i in (50, 300):
                    samples.append((len(os.listdir(f"/proc/{pid}/fd")), rss_mib(pid)))
        finally:
            code, _ = agent.stop()
            server.stop(signal.SIGKILL)
            target.close()
        self.assertEqual(code, 0, agent.output())
        (fds_50, rss_50), (fds_300, rss_300) = samples
        print(f"\nafter 50 sessions: {fds_50} fds, {rss_50:.1f} MiB; after 300: {fds_300} fds, {rss_300:.1f} MiB")
        # Idle pooled connections come and go (a few fds); a leak would add one per session.
        self.assertLessEqual(fds_300, fds_50 + 3)
        if not asan:  # the sanitizers' allocator keeps freed memory in quarantine
            self.assertLess(rss_300 - rss_50, 1.0, "resident memory grew with the number of sessions")


class OutOfDescriptors(unittest.TestCase):
    def test_the_soft_limit_is_raised_and_running_out_is_said_before_connections_are_dropped(self):
        # libuv closes the connections waiting to be accepted, without a word, once none is left.
        target = Target()
        server, server_port = start_server(target.port, "--long-poll-ms", "1000")
        agent = Process(["prlimit", "--nofile=40:96", AGENT, "-v", "--listen", "127.0.0.1:0",
                         f"http://127.0.0.1:{server_port}{ENDPOINT_PATH}"])
        port = int(agent.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        clients = []
        try:
            agent.wait_for_line(r"file descriptors: soft limit raised from 40 to 96")
            # One session, the rest wait for it: each waiting connection holds a descriptor.
            for _ in range(120):
                clients.append(connect(port))
                if agent.count(r"file descriptors are running out") > 0:
                    break
            line = agent.wait_for_line(r"file descriptors are running out \(this connection got number (\d+) of at "
                                       r"most 96\).*ulimit -n")
            self.assertGreaterEqual(int(line.group(1)), 80)
            self.assertEqual(agent.count(r"file descriptors are running out"), 1, agent.output())
            for c in clients:
                c.close()
            clients = []
            # Still serving once they are gone.
            wait_until(lambda: agent.count(r"session \d+ \(.*\) closed after") >= 1, 30, "the first session's end")
            with connect(port) as s:
                self.assertEqual(exchange(s, b"after", timeout=30), b"after")
        finally:
            for c in clients:
                c.close()
            code, _ = agent.stop()
            server.stop(signal.SIGKILL)
            target.close()
        self.assertEqual(code, 0, agent.output())


if __name__ == "__main__":
    unittest.main()
