"""Helpers for the integration tests: start the real binaries on loopback with free ports, and
wait on conditions with deadlines (never a guessed sleep)."""
import atexit
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

AGENT = os.environ.get("TUNNEL_AGENT", "")
SERVER = os.environ.get("TUNNEL_TEST_SERVER", "")

# The agent reads TUNNEL_* variables and $XDG_CONFIG_HOME/tunnel-agent/config.toml: keep the
# developer's own settings out of the tests.
for _name in [n for n in os.environ if n.startswith("TUNNEL_") and n not in ("TUNNEL_AGENT", "TUNNEL_TEST_SERVER", "TUNNEL_TEST_TLS_HOST")]:
    del os.environ[_name]
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="tunnel-test-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)
ENDPOINT_PATH = "/.~~spring-boot!~/debug"
FIXTURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def wait_until(predicate, timeout, what, cond=None):
    """Re-checks `predicate` until it holds or `timeout` seconds pass. With a Condition, waits on its
    notifications; otherwise re-checks every 10 ms. Raises AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    ticker = cond or threading.Condition()
    with ticker:
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n" + live_output())
            ticker.wait(min(left, 0.01 if cond is None else left))


LIVE = []  # processes started and not yet stopped, so a failure can show what they printed


def live_output(lines=40):
    """The last `lines` lines of every process still running, for failure messages."""
    return "\n".join(f"--- {os.path.basename(p.args[0])} (last {lines} lines):\n" + "\n".join(p.lines[-lines:])
                     for p in LIVE)


class Process:
    """A child process whose stdout and stderr lines are collected as they come."""

    def __init__(self, args, env=None, stdin=False):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)
        self.text = {"out": "", "err": ""}
        self.cond = threading.Condition()
        self.readers = [threading.Thread(target=self._collect, args=(s, name), daemon=True)
                        for s, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for t in self.readers:
            t.start()
        LIVE.append(self)

    def _collect(self, stream, name):
        # Chunks, not lines: interactive programs (jdb) print prompts without a newline.
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self.cond:
                self.text[name] += chunk.decode("utf-8", "replace")
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    @property
    def lines(self):
        with self.cond:
            return self.text["out"].splitlines() + self.text["err"].splitlines()

    def output(self):
        return "\n".join(self.lines)

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_for_line(self, pattern, timeout=10):
        regex = re.compile(pattern)

        def found():
            for line in self.lines:
                m = regex.search(line)
                if m:
                    return m
            return None
        try:
            return wait_until(found, timeout, f"a line matching {pattern!r}", self.cond)
        except AssertionError:
            raise AssertionError(f"no line matching {pattern!r} within {timeout} s; output so far:\n{self.output()}")

    def count(self, pattern):
        regex = re.compile(pattern)
        return sum(1 for line in self.lines if regex.search(line))

    def stop(self, sig=signal.SIGINT, timeout=10):
        """Sends `sig` and returns (exit code, seconds it took to exit)."""
        if self in LIVE:
            LIVE.remove(self)
        if self.proc.poll() is None:
            start = time.monotonic()
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.args[0]} did not exit within {timeout} s of signal {sig}")
            took = time.monotonic() - start
        else:
            took = 0.0
        for t in self.readers:
            t.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode, took


def start_server(target_port, *extra):
    server = Process([SERVER, "--listen", "127.0.0.1:0", "--target", f"127.0.0.1:{target_port}", *extra])
    m = server.wait_for_line(r"^listening on 127\.0\.0\.1:(\d+)$")
    return server, int(m.group(1))


def server_stats(port):
    """The test server's counters (requests, bodies applied and lost, ...), from its stats page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/.tunnel-test-server/stats", timeout=10) as answer:
        return json.loads(answer.read())


def start_agent(server_port, *extra, env=None, path=ENDPOINT_PATH, url=None):
    args = [AGENT, "--listen", "127.0.0.1:0", *extra, url or f"http://127.0.0.1:{server_port}{path}"]
    agent = Process(args, env=env)
    m = agent.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)")
    return agent, int(m.group(1))


def start_debuggee(source="DebuggeeMain.java"):
    """Starts a JVM running tests/fixtures/`source` with JDWP on a free loopback port, once it says
    "debuggee ready"; returns (process, JDWP port)."""
    # A port picked here, not 0: with 0 the JVM listens on a new port after each debugger leaves.
    def launch(port):
        return Process(["java", f"-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=127.0.0.1:{port}",
                        os.path.join(FIXTURES_DIR, source)])

    def ready(jvm, port):
        listening = rf"Listening for transport dt_socket at address: {port}"
        wait_until(lambda: jvm.count(listening) > 0 or jvm.proc.poll() is not None, 60, "the JVM to listen", jvm.cond)
        if jvm.count(listening) == 0:
            raise AssertionError(f"the JVM exited before it listened on 127.0.0.1:{port}:\n{jvm.output()}")
        jvm.wait_for_line(r"debuggee ready", timeout=60)

    port, jvm = start_on_free_port(launch, ready)
    return jvm, port


def start_on_free_port(launch, ready, attempts=5):
    """Runs `launch(port)` (a Process) on a free port and `ready(process, port)`, which raises
    AssertionError unless it came up; returns (port, process). For programs that cannot take port 0
    and say which they got (squid, tinyproxy, nghttpx, a JVM): their port can go to another test
    between free_port() and their bind (ctest -j), and then they exit; another port is tried."""
    for attempt in range(attempts):
        port = free_port()
        process = launch(port)
        try:
            ready(process, port)
            return port, process
        except AssertionError:
            exited = process.proc.poll() is not None
            process.stop()
            if not exited or attempt == attempts - 1:
                raise


_DEAD = []  # sockets bound and never listening, held for the life of the test process


def dead_port():
    """A loopback port that refuses connections, and goes on refusing them: a socket is bound to it
    and never listens, and is kept, so no other program (or test) can take the port meanwhile."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _DEAD.append(s)
    return s.getsockname()[1]


def free_port():
    """A port with nothing listening on it, for programs that cannot bind port 0 and say which port
    they got (nghttpx, squid, tinyproxy, a JVM). Below the ephemeral range: a port from that range,
    bound and released, can be taken at once by any outgoing connection or bind to port 0 of a test
    running beside this one; one below it only by another free_port(), at random among thousands."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 12000)
    for _ in range(200):
        port = random.randrange(10000, low)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port found below the ephemeral range")


def _listening_inodes(port):
    """The inodes of the sockets listening on 127.0.0.1:`port` (from /proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def _holds_socket(pid, inodes):
    """Whether process `pid` or one of its descendants holds one of the socket `inodes`."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
        children = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += f.read().split()
    except OSError:
        return False
    return any(_holds_socket(int(c), inodes) for c in children)


def wait_listening(port, what, timeout=30, process=None):
    """Waits until something accepts connections on 127.0.0.1:`port` (with `process`: until it, or a
    child of it, listens there, not another test's program that took the port); fails at once, with
    what it printed, if `process` exits first (a port taken after all, a bad configuration)."""
    def accepts():
        if process is not None and process.proc.poll() is not None:
            raise AssertionError(f"{what} exited ({process.proc.returncode}) before it listened on "
                                 f"127.0.0.1:{port}:\n{process.output()}")
        if process is not None and not _holds_socket(process.proc.pid, _listening_inodes(port)):
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(accepts, timeout, f"{what} to listen on 127.0.0.1:{port}")


class Target:
    """A TCP target on 127.0.0.1:0 that echoes what it reads (or, with echo=False, only counts it).
    It records each connection's open and close times so tests can see what the server did."""

    def __init__(self, echo=True):
        self.echo = echo
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.opened = []   # monotonic times
        self.closed = []   # monotonic times
        self.received = 0
        self.data = []     # what each connection received, in order of opening
        self.conns = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.cond:
                self.opened.append(time.monotonic())
                self.conns.append(conn)
                self.data.append(bytearray())
                received = self.data[-1]
                self.cond.notify_all()
            threading.Thread(target=self._serve, args=(conn, received), daemon=True).start()

    def _serve(self, conn, received):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                with self.cond:
                    self.received += len(data)
                    if len(received) < 1 << 20:  # enough to tell streams apart, bounded for big transfers
                        received.extend(data[:(1 << 20) - len(received)])
                if data.endswith(b"CLOSE-NOW"):
                    break
                if data.endswith(b"REPLY-AND-CLOSE"):  # as a JVM answering a Dispose: the reply, then EOF
                    conn.sendall(data)
                    break
                if self.echo:
                    conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            with self.cond:
                self.closed.append(time.monotonic())
                self.cond.notify_all()

    def wait_opened(self, n, timeout=10):
        wait_until(lambda: len(self.opened) >= n, timeout, f"{n} target connection(s)", self.cond)

    def wait_closed(self, n, timeout=10):
        wait_until(lambda: len(self.closed) >= n, timeout, f"{n} target connection(s) to close", self.cond)

    def close(self):
        self.sock.close()
        with self.cond:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


def connect(port, timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def exchange(sock, payload, timeout=60):
    """Sends `payload` while reading the echo at the same time (both directions at once); returns
    the bytes read back (as many as were sent, unless the connection ends first)."""
    got = bytearray()
    sock.settimeout(timeout)
    errors = []

    def reader():
        try:
            while len(got) < len(payload):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                got.extend(chunk)
        except OSError as e:
            errors.append(e)
    t = threading.Thread(target=reader)
    t.start()
    sock.sendall(payload)
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"echo of {len(payload)} bytes incomplete after {timeout} s: {len(got)} bytes back\n"
                             + live_output())
    if len(got) != len(payload) or errors:
        raise AssertionError(f"echo of {len(payload)} bytes ended after {len(got)} bytes ({errors or 'closed'})\n"
                             + live_output())
    return bytes(got)


def jdwp_hello(sock):
    """Sends a debugger's JDWP handshake on `sock` and returns the answer: the 14 bytes a JVM sends
    back, or fewer if the connection ended first."""
    sock.sendall(b"JDWP-Handshake")
    answer = b""
    while len(answer) < 14:
        chunk = sock.recv(14 - len(answer))
        if not chunk:
            break
        answer += chunk
    return answer


# Every proxy variable the agent reads, emptied: a test's agent goes only where the test says.
# No proxy from the environment, nor from a desktop's settings (--proxy-auto reads them on a desktop).
NO_PROXY_ENV = {"http_proxy": "", "https_proxy": "", "all_proxy": "", "HTTPS_PROXY": "", "ALL_PROXY": "",
                "no_proxy": "", "NO_PROXY": "", "TUNNEL_AGENT_PROXY_PASSWORD": "", "XDG_CURRENT_DESKTOP": ""}


def failed_line(agent, port):
    """Connects to the agent's `port`, waits for the session to end, returns its "failed" line."""
    with connect(port) as s:
        read_until_closed(s)
    return agent.wait_for_line(r"session \d+ .*failed").string


def read_until_closed(sock, timeout=10):
    """Reads until the peer closes; returns what was read. Fails if it does not close in time."""
    sock.settimeout(timeout)
    data = bytearray()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(data)
            data.extend(chunk)
    except socket.timeout:
        raise AssertionError(f"the local connection was not closed within {timeout} s")
    except ConnectionResetError:
        return bytes(data)


def sha256(data):
    return hashlib.sha256(data).hexdigest()
