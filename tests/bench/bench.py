"""tunnel-agent benchmark: the same client measurements over direct TCP, over tunnel-agent with the
test server, and over GNU httptunnel (htc/hts), in one run on loopback; then again across emulated
links (a relay with a one-way delay and a rate cap each way, and a connect that costs a round trip;
tests/integration/link.py), each of the three across the same relay. Prints a table per setting and
writes JSON. Usage: bench.py --agent PATH --server PATH [--out FILE] [--size-mib N] [--idle-seconds N]
[--link DELAY_MS:MBIT ...] [--link-size-mib N] [--no-link | --link-only]"""
import argparse
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import free_port, live_output, start_agent, start_server, wait_listening  # noqa: E402  (the tests' helpers: free ports, deadlines)
from link import Link  # noqa: E402
from proxies import Squid  # noqa: E402

CHUNK = 1 << 20


class Targets:
    """echo, source ("SEND n" -> n bytes) and sink (reads n bytes after "RECV n", answers "OK n")."""

    def __init__(self):
        self.ports = {}
        for kind in ("echo", "source", "sink"):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            self.ports[kind] = s.getsockname()[1]
            threading.Thread(target=self._accept, args=(s, kind), daemon=True).start()

    def _accept(self, s, kind):
        while True:
            conn, _ = s.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=getattr(self, "_" + kind), args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    return
                conn.sendall(data)

    @staticmethod
    def _line(conn):
        line = b""
        while not line.endswith(b"\n"):
            b = conn.recv(1)
            if not b:
                return None
            line += b
        return line.decode().split()

    def _source(self, conn):
        with conn:
            words = self._line(conn)
            if not words:
                return
            left = int(words[1])
            block = os.urandom(CHUNK)
            while left > 0:
                n = min(left, CHUNK)
                conn.sendall(block[:n])
                left -= n
            conn.recv(1)  # wait for the client to close

    def _sink(self, conn):
        with conn:
            words = self._line(conn)
            if not words:
                return
            want, got = int(words[1]), 0
            while got < want:
                data = conn.recv(CHUNK)
                if not data:
                    break
                got += len(data)
            conn.sendall(f"OK {got}\n".encode())
            conn.recv(1)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(CHUNK, n - len(buf)))
        if not chunk:
            raise RuntimeError(f"connection closed after {len(buf)} of {n} bytes")
        buf.extend(chunk)
    return buf


def ping_pong(port, warmup=200, timed=2000):
    with connect(port) as s:
        msg = os.urandom(64)
        for _ in range(warmup):
            s.sendall(msg)
            recv_exact(s, 64)
        samples = []
        for _ in range(timed):
            t = time.perf_counter_ns()
            s.sendall(msg)
            if recv_exact(s, 64) != msg:
                raise RuntimeError("ping-pong: echo differs")
            samples.append((time.perf_counter_ns() - t) / 1000)
    samples.sort()
    return {"median_us": round(statistics.median(samples), 1), "p99_us": round(samples[int(len(samples) * 0.99)], 1)}


def download(port, size):
    with connect(port) as s:
        t = time.perf_counter()
        s.sendall(f"SEND {size}\n".encode())
        got = 0
        while got < size:
            chunk = s.recv(CHUNK)
            if not chunk:
                raise RuntimeError(f"download: closed after {got} of {size} bytes")
            got += len(chunk)
        took = time.perf_counter() - t
    return {"MB_per_s": round(size / took / 1e6, 1), "bytes": got}


def upload(port, size):
    block = os.urandom(CHUNK)
    with connect(port) as s:
        t = time.perf_counter()
        s.sendall(f"RECV {size}\n".encode())
        left = size
        while left > 0:
            n = min(left, CHUNK)
            s.sendall(block[:n])
            left -= n
        line = b""
        while not line.endswith(b"\n"):
            b = s.recv(64)
            if not b:
                raise RuntimeError("upload: closed before the byte count came back")
            line += b
        took = time.perf_counter() - t
    got = int(line.split()[1])
    if got != size:
        raise RuntimeError(f"upload: the sink counted {got} of {size} bytes")
    return {"MB_per_s": round(size / took / 1e6, 1), "bytes": got}


def echo_two_way(port, size):
    """Sends `size` bytes to an echo target while reading them back; both directions at once."""
    data = os.urandom(size)
    back = bytearray()
    with connect(port) as s:
        t = time.perf_counter()

        def reader():
            while len(back) < size:
                chunk = s.recv(CHUNK)
                if not chunk:
                    return
                back.extend(chunk)
        r = threading.Thread(target=reader)
        r.start()
        s.sendall(data)
        r.join(300)
        took = time.perf_counter() - t
    if bytes(back) != data:
        raise RuntimeError(f"two-way echo: {len(back)} of {size} bytes came back, or they differ")
    return {"MB_per_s": round(size / took / 1e6, 2), "bytes": size}


def first_byte(port, rounds=20, between=None):
    """Median time from connect to the first echoed byte. `between(n)`, if given, runs after the
    n-th connection closed and before the next one is timed (without it, each connects at once)."""
    samples = []
    for n in range(rounds):
        if between and n > 0:
            between(n)
        t = time.perf_counter()
        with connect(port) as s:
            s.sendall(b"x")
            recv_exact(s, 1)
        samples.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(samples), 2)}


def attach(port, agent=None, rounds=15):
    """A debugger's attach: connect, send the JDWP handshake, read the JVM's. Between rounds the JVM
    must take a new debugger: through the agent, once the session has ended; directly, once it
    listens again (until then it refuses or resets a connection: that try is not counted)."""
    samples = []
    for i in range(rounds):
        deadline = time.monotonic() + 30
        while True:
            t = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.sendall(b"JDWP-Handshake")
                    answer = recv_exact(s, 14)
                break
            except (ConnectionRefusedError, ConnectionResetError, RuntimeError):
                if agent or time.monotonic() > deadline:
                    raise
        if answer != b"JDWP-Handshake":
            raise RuntimeError(f"attach: the JVM answered {bytes(answer)!r} to the JDWP handshake")
        samples.append((time.perf_counter() - t) * 1000)
        if agent:
            agent.wait_for_line(rf"session {i + 1} .*closed after", timeout=30)
    return {"median_ms": round(statistics.median(samples), 2)}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Agent:
    """tunnel-agent + tunnel-test-server in front of one target (the tests' launchers: ports from the
    programs themselves, output kept for a failure report)."""

    def __init__(self, agent, server, target_port, long_poll_ms=10000, link=None, proxy=None):
        self.server, server_port = start_server(target_port, "--long-poll-ms", str(long_poll_ms))
        self.link = Link(server_port, *link, handshake=True) if link else None
        # proxy: a squid on this side of the link (a company's proxy sits by the laptop, the link
        # is the way from it to the server), which the agent goes through.
        extra = ("--proxy", proxy.url) if proxy else ()
        self.agent, self.port = start_agent(self.link.port if link else server_port, *extra, env={"http_proxy": ""})
        self.pid = self.agent.proc.pid

    def between_sessions(self, n):
        """Returns once session n has ended (its closing line)."""
        self.agent.wait_for_line(rf"session {n} \(.*\) closed after", timeout=30)

    def stop(self):
        self.agent.stop()
        if self.link:
            self.link.close()
        self.server.stop(signal.SIGKILL)


class Direct:
    """Direct TCP across the emulated link: the limit. With `proxy` (a Squid), the TCP stream goes
    through it by CONNECT, as any client behind that proxy would reach the target."""

    def __init__(self, target_port, link, proxy=None):
        self.link = Link(target_port, *link, handshake=True)
        self.pid = None
        self.relay = ConnectRelay(proxy, self.link.port) if proxy else None
        self.port = self.relay.port if proxy else self.link.port

    def between_sessions(self, n):
        pass  # a closed TCP connection is gone at once

    def stop(self):
        if self.relay:
            self.relay.close()
        self.link.close()


class ConnectRelay:
    """Listens on 127.0.0.1:0 (`port`); each connection is carried through `proxy` by a CONNECT to
    127.0.0.1:`target_port`, bytes relayed both ways once the proxy answers 200."""

    def __init__(self, proxy, target_port):
        self.proxy, self.target_port = proxy, target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        try:
            up = socket.create_connection(("127.0.0.1", self.proxy.port))
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = f"127.0.0.1:{self.target_port}"
            up.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = up.recv(4096)
                if not chunk:
                    raise OSError("the proxy closed the connection before it answered CONNECT")
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1)
            if b" 200" not in head.split(b"\r\n", 1)[0]:
                raise OSError(f"the proxy refused CONNECT: {head.splitlines()[0]!r}")
            if rest:
                client.sendall(rest)
        except OSError:
            client.close()
            return

        def pump(src, dst):
            try:
                while data := src.recv(1 << 16):
                    dst.sendall(data)
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        threading.Thread(target=pump, args=(up, client), daemon=True).start()
        pump(client, up)

    def close(self):
        self.sock.close()


class Htc:
    """GNU httptunnel: htc (client) -> hts (server) -> target."""

    def __init__(self, target_port, link=None, proxy=None):
        hts_port, self.port = free_port(), free_port()
        self.hts = subprocess.Popen(["hts", "-w", "-F", f"127.0.0.1:{target_port}", str(hts_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(hts_port, "hts")
        self.link = Link(hts_port, *link, handshake=True) if link else None
        through = ("-P", f"127.0.0.1:{proxy.port}") if proxy else ()
        self.htc = subprocess.Popen(["htc", "-w", *through, "-F", str(self.port),
                                     f"127.0.0.1:{self.link.port if link else hts_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, "htc")
        self.pid = self.htc.pid

    def stop(self):
        for p in (self.htc, self.hts):
            p.kill()
            p.wait()
        if self.link:
            self.link.close()
        return ""


def measure(name, make, targets, size, stats, jvm_port=None):
    """Runs every client measurement through `make(target_port)` (None: direct TCP); with a JVM's
    JDWP port, a debugger's attach too."""
    out = {}
    print(f"  {name}: ping-pong", file=sys.stderr, flush=True)
    via = make(targets.ports["echo"]) if make else None
    port = via.port if via else targets.ports["echo"]
    out["ping_pong"] = ping_pong(port)
    if via:
        via.stop()
    for kind, target, transfer in (("download", "source", download), ("upload", "sink", upload)):
        print(f"  {name}: {kind}", file=sys.stderr, flush=True)
        via = make(targets.ports[target]) if make else None
        cpu0 = cpu_seconds(via.pid) if via else 0
        out[kind] = transfer(via.port if via else targets.ports[target], size)
        if via:
            out[kind]["cpu_s"] = round(cpu_seconds(via.pid) - cpu0, 3)
            out[kind]["peak_rss_kib"] = memory_kib(via.pid, "VmHWM")
            out[kind]["anon_rss_kib"] = memory_kib(via.pid, "RssAnon")
            via.stop()
    if make is not Htc:  # hts serves one tunnel for its life: fresh connections need fresh pairs
        print(f"  {name}: connect to first byte", file=sys.stderr, flush=True)
        via = make(targets.ports["echo"]) if make else None
        out["first_byte"] = first_byte(via.port if via else targets.ports["echo"])
        if via:
            via.stop()
    if jvm_port and make is not Htc:
        print(f"  {name}: debugger attach", file=sys.stderr, flush=True)
        via = make(jvm_port) if make else None
        out["attach"] = attach(via.port if via else jvm_port, via.agent if via else None)
        if via:
            via.stop()
    if via is not None or make:
        moved_gb = 2 * size / 1e9
        out["cpu_s_per_gb"] = round((out["download"]["cpu_s"] + out["upload"]["cpu_s"]) / moved_gb, 2)
        out["peak_rss_mib"] = round(max(out["download"]["peak_rss_kib"], out["upload"]["peak_rss_kib"]) / 1024, 1)
        # The process's own memory (heap, stacks), without the shared libraries' pages.
        out["anon_rss_mib"] = round(max(out["download"]["anon_rss_kib"], out["upload"]["anon_rss_kib"]) / 1024, 1)
    stats[name] = out


HIT = r'"thread=main", StressDebuggee\.tick\(\)'  # jdb's line for a breakpoint hit in tick()


def jdb_session(port, rounds=3):
    """What a debugger user waits for: jdb attaches, lists the threads, sets a breakpoint, hits it,
    prints a field, continues to the next hit and quits (tests/fixtures/StressDebuggee.java). Wall
    time from jdb's start to its exit, median of `rounds` sessions; the JVM's own start is not in it."""
    steps = ((None, r"^> |Unable to attach"), ("threads\n", r"\(java\.lang\.Thread\)\S+\s+main\s"),
             ("stop in StressDebuggee.tick\n", HIT), ("print StressDebuggee.total\n", r"StressDebuggee\.total = \d+"),
             ("cont\n", None), ("quit\n", None))
    times = []
    for _ in range(rounds * 4):
        if len(times) == rounds:
            break
        start = time.monotonic()
        jdb = harness.Process(["jdb", "-connect", f"com.sun.jdi.SocketAttach:hostname=127.0.0.1,port={port}"], stdin=True)
        try:
            for command, pattern in steps:
                if command:
                    jdb.send(command)
                if command == "cont\n":  # the next hit: a second "Breakpoint hit" line
                    harness.wait_until(lambda: jdb.count(HIT) >= 2, 60,
                                       "jdb's second breakpoint hit", jdb.cond)
                elif pattern:
                    jdb.wait_for_line(pattern, timeout=60)
                if "Unable to attach" in jdb.output():
                    break  # the JVM was not listening again yet after the last session: try again
            else:
                jdb.proc.wait(60)
                times.append((time.monotonic() - start) * 1000)
        finally:
            jdb.stop(signal.SIGKILL)
    if len(times) < rounds:
        raise RuntimeError(f"jdb_session: {len(times)} of {rounds} jdb sessions completed")
    return {"median_ms": round(statistics.median(times), 1), "all_ms": [round(t, 1) for t in times]}


def measure_link(name, make, targets, size, stats, jvm_port=None):
    """Across an emulated link: fewer rounds (each costs the link's round trip), smaller transfers;
    with a JVM's JDWP port, a whole jdb session too."""
    out = {}
    for figure, target, run in (
            ("ping_pong", "echo", lambda port: ping_pong(port, warmup=5, timed=40)),
            ("download", "source", lambda port: download(port, size)),
            ("upload", "sink", lambda port: upload(port, size)),
            ("echo", "echo", lambda port: echo_two_way(port, size)),
            # Each connect right after the last one closed: the agent's next session waits for the
            # last to end (the server drops its target first: one round trip).
            ("first_byte", "echo", lambda port: first_byte(port, rounds=10)),
            # Each connect once the last session has ended, as an IDE attaches to an idle agent.
            ("first_byte_idle", "echo", lambda port: first_byte(port, rounds=10, between=via.between_sessions)),
            # hts serves one tunnel for its life: one jdb session through it
            ("jdb_session", "jvm", lambda port: jdb_session(port, rounds=1 if name == "htc" else 3))):
        if figure.startswith("first_byte") and name == "htc":
            continue  # hts serves one tunnel for its life
        if target == "jvm" and not jvm_port:
            continue
        print(f"  {name}: {figure}", file=sys.stderr, flush=True)
        via = make(jvm_port if target == "jvm" else targets.ports[target])
        try:
            out[figure] = run(via.port)
        except (OSError, AssertionError, RuntimeError) as e:
            if name != "htc":
                raise
            # The peer being compared against may fail where we do not (htc resets a two-way
            # echo across the link): the table says so, the other figures stand.
            print(f"  htc: {figure} failed: {e}", file=sys.stderr, flush=True)
            out[figure] = {"failed": str(e)}
        finally:
            via.stop()
    stats[name] = out


def link_table(title, stats):
    d, a, h = stats["direct"], stats["agent"], stats.get("htc")

    def ratio(x, y):
        return f"{x / y:.2f}x" if y else "-"

    def get(entry, figure, key, scale=1.0):
        if not entry or figure not in entry:
            return "-"
        return "failed" if "failed" in entry[figure] else round(entry[figure][key] * scale, 2)
    rows = []
    for label, figure, key, scale in (("ping-pong median (ms)", "ping_pong", "median_us", 1e-3),
                                      ("ping-pong p99 (ms)", "ping_pong", "p99_us", 1e-3),
                                      ("download (MB/s)", "download", "MB_per_s", 1),
                                      ("upload (MB/s)", "upload", "MB_per_s", 1),
                                      ("two-way echo (MB/s each way)", "echo", "MB_per_s", 1),
                                      ("connect to first byte (ms)", "first_byte", "median_ms", 1),
                                      ("  the same, agent idle (ms)", "first_byte_idle", "median_ms", 1),
                                      ("jdb session (ms)", "jdb_session", "median_ms", 1)):
        dv, av, hv = get(d, figure, key, scale), get(a, figure, key, scale), get(h, figure, key, scale)
        rows.append((label, dv, av, hv, ratio(av, dv) if dv != "-" and av != "-" else "-"))
    out = [title,
           f"| {'measure':34} | {'direct TCP':>10} | {'tunnel-agent':>12} | {'htc/hts':>8} | {'agent/direct':>12} |",
           f"|{'-' * 36}|{'-' * 11}:|{'-' * 13}:|{'-' * 9}:|{'-' * 13}:|"]
    for name, dv, av, hv, r in rows:
        out.append(f"| {name:34} | {dv:>10} | {av:>12} | {hv:>8} | {r:>12} |")
    return "\n".join(out)


def run_links(args, targets, stats):
    tables = []
    have_jdk = shutil.which("java") and shutil.which("jdb")
    jvm, jvm_port = harness.start_debuggee("StressDebuggee.java") if have_jdk else (None, None)
    try:
        for text in args.link:
            tables.append(run_link(args, targets, stats, text, jvm_port))
    finally:
        if jvm:
            jvm.stop(signal.SIGKILL)
    return tables


def run_link(args, targets, stats, text, jvm_port):
    """One profile, DELAY_MS:MBIT[:squid]: with squid, every client (direct TCP by CONNECT, the
    agent, htc) goes through one squid on this side of the link."""
    delay, mbit, *via = text.split(":")
    delay, mbit = float(delay), float(mbit)
    profile = (delay, mbit)
    key = f"link_{text}"
    stats[key] = {}
    size = args.link_size_mib << 20
    title = f"across a link of {delay:g} ms each way, {mbit:g} Mbit/s each way"
    if via:
        if via != ["squid"]:
            raise SystemExit(f"bench: --link {text}: the only proxy the benchmark knows is squid (DELAY_MS:MBIT:squid)")
        title += ", through squid (CONNECT) on this side of the link"
    print(title, file=sys.stderr)
    proxy = Squid() if via else None
    try:
        measure_link("direct", lambda port: Direct(port, profile, proxy=proxy), targets, size, stats[key], jvm_port)
        measure_link("agent", lambda port: Agent(args.agent, args.server, port, link=profile, proxy=proxy), targets,
                     size, stats[key], jvm_port)
        if shutil.which("htc") and shutil.which("hts"):
            measure_link("htc", lambda port: Htc(port, link=profile, proxy=proxy), targets, size, stats[key], jvm_port)
    finally:
        if proxy:
            proxy.stop()
    stats[key]["size_bytes"] = size
    return link_table(title, stats[key])


def idle(agent_path, server_path, targets, seconds):
    a = Agent(agent_path, server_path, targets.ports["echo"])
    with connect(a.port) as s:
        s.sendall(b"hi")
        recv_exact(s, 2)
        cpu0, t0 = cpu_seconds(a.pid), time.monotonic()
        # The measured quiet period: nothing may arrive on the idle session until its end.
        ready, _, _ = select.select([s], [], [], seconds)
        if ready:
            raise RuntimeError(f"idle: the idle session delivered data after {time.monotonic() - t0:.1f} s")
        cpu = cpu_seconds(a.pid) - cpu0
        rss = memory_kib(a.pid, "VmRSS")
        anon = memory_kib(a.pid, "RssAnon")
        took = time.monotonic() - t0
    a.stop()
    return {"seconds": round(took, 1), "cpu_percent": round(100 * cpu / took, 3), "rss_mib": round(rss / 1024, 1),
            "anon_rss_mib": round(anon / 1024, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--out", default="build/bench/latest.json")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--link", action="append",
                    help="DELAY_MS:MBIT, one way each, or DELAY_MS:MBIT:squid through a squid on this side of the "
                         "link (default: 20:100, 20:100:squid and 5:1000)")
    ap.add_argument("--link-size-mib", type=int, default=8)
    ap.add_argument("--no-link", action="store_true", help="loopback only")
    ap.add_argument("--link-only", action="store_true", help="the link tables only")
    args = ap.parse_args()
    if args.link is None:
        args.link = [] if args.no_link else ["20:100", "20:100:squid", "5:1000"]
    harness.AGENT, harness.SERVER = args.agent, args.server
    try:
        run(args)
    except Exception:
        print("the benchmark failed; what the agent and server said last:\n" + live_output(), file=sys.stderr)
        raise


def run(args):
    size = args.size_mib << 20
    targets = Targets()
    stats = {}
    if args.link_only:
        for t in run_links(args, targets, stats):
            print("\n" + t)
        return
    jvm, jvm_port = harness.start_debuggee() if shutil.which("java") else (None, None)
    print("direct TCP", file=sys.stderr)
    measure("direct", None, targets, size, stats, jvm_port)
    print("tunnel-agent + test server", file=sys.stderr)
    measure("agent", lambda port: Agent(args.agent, args.server, port), targets, size, stats, jvm_port)
    if jvm:
        jvm.stop(signal.SIGKILL)
    if shutil.which("htc") and shutil.which("hts"):
        print("GNU httptunnel (htc/hts)", file=sys.stderr)
        measure("htc", Htc, targets, size, stats)
    print(f"idle session ({args.idle_seconds:.0f} s)", file=sys.stderr)
    stats["agent"]["idle"] = idle(args.agent, args.server, targets, args.idle_seconds)
    link_tables = run_links(args, targets, stats)
    stats["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                        "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    stats["size_bytes"] = size
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(stats, f, indent=2)
    print(table(stats))
    for t in link_tables:
        print("\n" + t)


def table(stats):
    d, a, h = stats["direct"], stats["agent"], stats.get("htc")

    def ratio(x, y):
        return f"{x / y:.2f}x" if y else "-"
    rows = [
        ("ping-pong median (us)", d["ping_pong"]["median_us"], a["ping_pong"]["median_us"],
         h and h["ping_pong"]["median_us"], ratio(a["ping_pong"]["median_us"], d["ping_pong"]["median_us"])),
        ("ping-pong p99 (us)", d["ping_pong"]["p99_us"], a["ping_pong"]["p99_us"], h and h["ping_pong"]["p99_us"],
         ratio(a["ping_pong"]["p99_us"], d["ping_pong"]["p99_us"])),
        ("download (MB/s)", d["download"]["MB_per_s"], a["download"]["MB_per_s"], h and h["download"]["MB_per_s"],
         ratio(a["download"]["MB_per_s"], d["download"]["MB_per_s"])),
        ("upload (MB/s)", d["upload"]["MB_per_s"], a["upload"]["MB_per_s"], h and h["upload"]["MB_per_s"],
         ratio(a["upload"]["MB_per_s"], d["upload"]["MB_per_s"])),
        ("connect to first byte (ms)", d["first_byte"]["median_ms"], a["first_byte"]["median_ms"], "-",
         ratio(a["first_byte"]["median_ms"], d["first_byte"]["median_ms"])),
        *([("debugger attach (ms)", d["attach"]["median_ms"], a["attach"]["median_ms"], "-",
            ratio(a["attach"]["median_ms"], d["attach"]["median_ms"]))] if "attach" in a else []),
        ("client peak RSS (MiB)", "-", a["peak_rss_mib"], h and h["peak_rss_mib"], ""),
        ("client own memory after bulk (MiB)", "-", a["anon_rss_mib"], h and h["anon_rss_mib"], ""),
        ("client CPU (s per GB moved)", "-", a["cpu_s_per_gb"], h and h["cpu_s_per_gb"], ""),
        ("idle session: CPU (% of a core)", "-", a["idle"]["cpu_percent"], "-", ""),
        ("idle session: RSS / own (MiB)", "-", f'{a["idle"]["rss_mib"]} / {a["idle"]["anon_rss_mib"]}', "-", ""),
    ]
    out = [f"| {'measure':34} | {'direct TCP':>10} | {'tunnel-agent':>12} | {'htc/hts':>8} | {'agent/direct':>12} |",
           f"|{'-' * 36}|{'-' * 11}:|{'-' * 13}:|{'-' * 9}:|{'-' * 13}:|"]
    for name, dv, av, hv, r in rows:
        out.append(f"| {name:34} | {dv if dv is not None else '-':>10} | {av:>12} | "
                   f"{hv if hv not in (None, False) else '-':>8} | {r:>12} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
