"""The Windows agent (build-windows/tunnel-agent.exe) under Wine, against our Linux test server on
loopback: run by tests/windows/run, with TUNNEL_AGENT=tests/windows/wine-agent. The integration
classes that run 'as is' with the Windows agent are named in tests/windows/run; these are the
Windows-only checks."""
import hashlib
import os
import subprocess
import sys
import time
import unittest

LINUX_AGENT = os.environ.get("TUNNEL_LINUX_AGENT", "")  # read first: the harness clears TUNNEL_* names
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import AGENT, Target, connect, start_agent, start_server  # noqa: E402


def echo_seconds(agent_path, size):
    """Seconds for `size` random bytes to go through agent_path and come back byte-exact."""
    import harness
    saved = harness.AGENT
    harness.AGENT = agent_path
    target = Target()
    server, server_port = start_server(target.port, "--long-poll-ms", "2000")
    agent, port = start_agent(server_port)
    try:
        payload = os.urandom(size)
        start = time.monotonic()
        with connect(port) as s:
            s.settimeout(60)
            received = bytearray()
            sent = 0
            while sent < len(payload) or len(received) < len(payload):
                if sent < len(payload):
                    sent += s.send(payload[sent:sent + 65536])
                s.setblocking(sent >= len(payload))
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                finally:
                    s.setblocking(True)
                    s.settimeout(60)
                if not data:
                    break
                received.extend(data)
        took = time.monotonic() - start
        if hashlib.sha256(received).digest() != hashlib.sha256(payload).digest():
            raise AssertionError(f"{agent_path}: the echo of {size} bytes came back as {len(received)} other bytes")
        code, _ = agent.stop()
        if code != 0:
            raise AssertionError(f"{agent_path} exited {code}:\n{agent.output()}")
        return took
    finally:
        harness.AGENT = saved
        server.stop()
        target.close()


class WindowsAgent(unittest.TestCase):
    def run_exe(self, *args):
        return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=60)

    def test_version_names_schannel_and_help_lists_the_options(self):
        start = time.monotonic()
        version = self.run_exe("--version")
        print(f"\nwindows: tunnel-agent.exe --version under Wine took {time.monotonic() - start:.2f} s", file=sys.stderr)
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertRegex(version.stdout, r"^tunnel-agent \d+\.\d+\.\d+ \(libcurl/[\d.]+ Schannel\)")
        usage = self.run_exe("--help")
        self.assertEqual(usage.returncode, 0, usage.stderr)
        for option in ("--listen", "--proxy", "--cacert", "--stdio", "--secret-file"):
            self.assertIn(option, usage.stdout)

    def test_the_config_file_is_looked_for_under_appdata(self):
        shown = self.run_exe("--print-config", "http://127.0.0.1:1/")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertRegex(shown.stdout, r"config file: none \(C:\\users\\[^\\]+\\AppData\\Roaming\\tunnel-agent\\config\.toml")

    def test_what_schannel_cannot_take_is_refused_at_start_with_what_to_give(self):
        # Schannel has no CA directory and no PEM key: refused before any session (a --capath
        # session used to hang with its local connection open).
        capath = self.run_exe("--capath", "C:\\windows", "https://localhost:1/")
        self.assertEqual(capath.returncode, 2, capath.stderr)
        self.assertIn("--capath is not supported on Windows: give the CA certificate file with --cacert", capath.stderr)
        key = self.run_exe("--cert", "C:\\windows\\win.ini", "--key", "C:\\windows\\win.ini", "https://localhost:1/")
        self.assertEqual(key.returncode, 2, key.stderr)
        self.assertIn("--key is not supported on Windows: give --cert a PKCS#12 file", key.stderr)

    def test_an_ip_address_url_names_what_schannel_wants_instead(self):
        # Schannel (curl 7.88) matches only a certificate's DNS names: the certificate names
        # 127.0.0.1 too, yet an IP-address URL fails, and the line says to use the host name.
        from harness import read_until_closed
        from tls import Nghttpx, Pki
        target = Target()
        server, server_port = start_server(target.port, "--long-poll-ms", "2000")
        pki = Pki()
        front = Nghttpx(pki, server_port)
        agent, port = start_agent(0, "--cacert", pki.path("ca.pem"), url=front.url.replace("localhost", "127.0.0.1"),
                                  env={"https_proxy": "", "all_proxy": ""})
        try:
            with connect(port) as s:
                read_until_closed(s)
            line = agent.wait_for_line(r"session 1 .*failed").string
            self.assertIn(f"TLS: the certificate 127.0.0.1:{front.port} presented does not name that host", line)
            self.assertIn("use the host name the certificate was made for in the URL, not an IP address", line)
        finally:
            agent.stop()
            front.stop()
            server.stop()
            target.close()
            pki.remove()

    def test_a_4_mib_echo_is_byte_exact_beside_the_linux_agent(self):
        size = 4 << 20
        windows = echo_seconds(AGENT, size)
        line = f"windows: 4 MiB echo through tunnel-agent.exe under Wine: {windows:.2f} s"
        if LINUX_AGENT:
            line += f"; through the Linux agent, same run: {echo_seconds(LINUX_AGENT, size):.2f} s"
        print("\n" + line, file=sys.stderr)


import test_kerberos  # noqa: E402  (as a module: only its subclass below is collected here)


class KerberosThroughSspi(test_kerberos.KerberosProxy):
    """The Kerberos tests of the Linux agent, through the .exe: Windows' SSPI (Negotiate) makes the
    login, for hop 1 (libcurl) and hop 2 (the agent's own CONNECT), from the ticket Wine's
    kerberos.dll finds in the test's credential cache. The login tests are inherited; a failed
    login is worded by SSPI, not GSS-API, and so is checked here."""

    def no_login_line(self, agent, port, hop, host):
        line = test_kerberos.failed_line(agent, port)
        # What SSPI says comes after the name: Wine's kerberos.dll answers an unknown name with
        # SEC_E_TARGET_UNKNOWN, and once in CI with SEC_E_INTERNAL_ERROR ("SSPI error 0x80090304").
        self.assertIn(f"proxy {hop} ({host}:{self.squid.port}) requires a Kerberos login (Negotiate): Windows could "
                      f"not make a Kerberos login for HTTP/{host} (SSPI", line)
        self.assertIn("log in to Windows with a domain account the proxy accepts", line)

    def test_no_ticket_says_to_run_kinit_with_the_realm(self):
        agent, port = self.agent("--proxy", self.squid.host_url, cache=os.path.join(self.kdc.dir, "no-such-cache"))
        self.no_login_line(agent, port, 1, "localhost")

    def test_a_proxy_reached_by_a_name_kerberos_does_not_know_is_named(self):
        agent, port = self.agent("--proxy", self.squid.url)
        self.no_login_line(agent, port, 1, "127.0.0.1")

    def test_hop_2_without_a_ticket_says_to_run_kinit(self):
        from proxies import Tinyproxy
        tiny = Tinyproxy()
        try:
            agent, port = self.agent("--proxy", tiny.url, "--proxy", self.squid.host_url,
                                     cache=os.path.join(self.kdc.dir, "no-such-cache"))
            self.no_login_line(agent, port, 2, "localhost")
        finally:
            tiny.stop()


if __name__ == "__main__":
    unittest.main()
