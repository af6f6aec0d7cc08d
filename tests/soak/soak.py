"""Soak: many sequential sessions, then one long session with steady traffic, through the real agent
and test server on loopback. Samples the agent's open file descriptors and resident memory and fails
if either grows. Usage: soak.py --agent PATH --server PATH [--sessions N] [--minutes M]"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import Target, connect, exchange, start_agent, start_server, wait_until  # noqa: E402


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def sample(pid, label):
    fds, rss = fd_count(pid), rss_kib(pid)
    print(f"{label:>28}  fds {fds:3d}  RSS {rss / 1024:6.1f} MiB", flush=True)
    return fds, rss


def sequential_sessions(agent, port, count):
    pid = agent.proc.pid
    marks = sorted({1, 10, 100, count // 4, count // 2, 3 * count // 4, count})
    samples = {}
    start = time.monotonic()
    for i in range(1, count + 1):
        message = f"session {i} ".encode() * 10
        with connect(port) as s:
            if exchange(s, message, timeout=30) != message:
                raise AssertionError(f"session {i}: echo differs")
        wait_until(lambda: agent.count(r"session \d+ \(.*\) closed after") >= i, 30, f"session {i} to close",
                   agent.cond)
        if i in marks:
            samples[i] = sample(pid, f"after {i} sessions")
    took = time.monotonic() - start
    print(f"{count} sessions in {took:.1f} s ({took / count * 1000:.1f} ms each)")
    return samples


def long_session(agent, port, minutes):
    pid = agent.proc.pid
    samples = []
    end = time.monotonic() + minutes * 60
    next_sample = time.monotonic()
    sent = 0
    with connect(port) as s:
        i = 0
        while time.monotonic() < end:
            # Steady traffic: a small request/reply every 20 ms (as a debugger stepping), and a
            # 256 KiB burst each second (a heap dump or a big stack).
            size = 256 * 1024 if i % 50 == 0 else 200
            message = os.urandom(size)
            if exchange(s, message, timeout=60) != message:
                raise AssertionError(f"long session: echo {i} differs")
            sent += size
            i += 1
            if time.monotonic() >= next_sample:
                samples.append(sample(pid, f"long session, {len(samples) * 30:4d} s"))
                next_sample += 30
            time.sleep(0.02)
    print(f"long session: {i} exchanges, {sent / 1e6:.1f} MB each way in {minutes} min")
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()
    harness.AGENT, harness.SERVER = args.agent, args.server

    target = Target()
    server, server_port = start_server(target.port, "--long-poll-ms", "10000")
    agent, port = start_agent(server_port)
    failures = []
    try:
        base = sample(agent.proc.pid, "started")
        seq = sequential_sessions(agent, port, args.sessions)
        first, last = seq[min(seq)], seq[max(seq)]
        # Idle pooled connections come and go (a few fds); a leak would add one per session.
        if last[0] > first[0] + 3:
            failures.append(f"fds grew over {args.sessions} sessions: {first[0]} -> {last[0]}")
        # Allocator noise aside, memory must not grow with the number of sessions.
        if last[1] - seq[10][1] > 1024:
            failures.append(f"RSS grew by {(last[1] - seq[10][1]) / 1024:.1f} MiB from session 10 to {args.sessions}")
        if args.minutes > 0:
            longs = long_session(agent, port, args.minutes)
            if longs[-1][0] > longs[0][0] + 3:
                failures.append(f"fds grew during the long session: {longs[0][0]} -> {longs[-1][0]}")
            # The first minute warms the buffers up; after it, resident memory must stay flat.
            warm = longs[min(2, len(longs) - 1)][1]
            peak = max(r for _, r in longs[2:] or longs)
            if peak - warm > 2048:
                failures.append(f"RSS grew by {(peak - warm) / 1024:.1f} MiB during the long session")
        print(f"baseline: fds {base[0]}, RSS {base[1] / 1024:.1f} MiB")
    finally:
        code, _ = agent.stop()
        server.stop(signal.SIGKILL)
        target.close()
    if code != 0:
        failures.append(f"agent exit code {code}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
