"""Run inside the install test's network namespace: bytes through the installed agent (chrooted)
to the tunnel-test-server (from the build) and an echo target, both on the namespace's loopback.
Usage: through_installed.py ROOT TUNNEL_TEST_SERVER"""
import os
import signal
import socket
import subprocess
import sys
import threading

root, server_binary = sys.argv[1], sys.argv[2]
DEADLINE = 30


def fail(message, *procs):
    print(f"install test: {message}", file=sys.stderr)
    for p in procs:
        p.kill()
        print(p.stdout.read().decode(errors="replace")[-3000:], file=sys.stderr)
    sys.exit(1)


def echo(listener):
    conn, _ = listener.accept()
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def port_from(proc, what):
    """The port from the first 'listening on 127.0.0.1:N' line the process prints."""
    timer = threading.Timer(DEADLINE, proc.kill)
    timer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if "listening on 127.0.0.1:" in line:
                return int(line.split("listening on 127.0.0.1:")[1].split("/")[0].split(",")[0].split()[0])
    finally:
        timer.cancel()
    fail(f"{what} did not say where it listens", proc)


subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
target = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=echo, args=(target,), daemon=True).start()
server = subprocess.Popen([server_binary, "--listen", "127.0.0.1:0", "--target", f"127.0.0.1:{target.getsockname()[1]}",
                           "--body-read-delay-ms", "5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
server_port = port_from(server, "the test server")
agent = subprocess.Popen(["chroot", root, "tunnel-agent", "--no-config", "--listen", "127.0.0.1:0",
                          f"http://127.0.0.1:{server_port}/.~~spring-boot!~/debug"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
agent_port = port_from(agent, "the installed agent")
payload = os.urandom(1 << 20)
back = bytearray()
with socket.create_connection(("127.0.0.1", agent_port), timeout=DEADLINE) as s:
    threading.Thread(target=s.sendall, args=(payload,), daemon=True).start()
    while len(back) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            break
        back.extend(chunk)
if bytes(back) != payload:
    fail(f"1 MiB through the installed agent came back as {len(back)} bytes, not the same", agent, server)
agent.send_signal(signal.SIGINT)
try:
    code = agent.wait(DEADLINE)
except subprocess.TimeoutExpired:
    fail("the installed agent did not stop on Ctrl-C", agent, server)
server.kill()
if code != 0:
    fail(f"the installed agent exited {code} after Ctrl-C", agent)
print("install test: 1 MiB echoed byte for byte through the installed agent")
