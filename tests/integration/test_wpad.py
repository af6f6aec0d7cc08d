"""WPAD end to end: --proxy-auto finds the PAC script at http://wpad.DOMAIN/wpad.dat by the DNS
domains of /etc/resolv.conf, as a laptop on a corporate network does. WPAD's port (80) and names are
fixed by the protocol, so the whole test (PAC server, squid, test server, target, agent) runs in a
network namespace of its own, whose /etc/resolv.conf and /etc/hosts `ip netns exec` replaces: the
machine's port 80 and its DNS are never touched. The cases themselves are in wpad_inside.py."""
import os
import shutil
import subprocess
import sys
import unittest

DOMAIN = "corp.tunnel.test"  # searched for wpad.corp.tunnel.test, then wpad.tunnel.test


class Wpad(unittest.TestCase):
    def setUp(self):
        self.ns = f"tunnel-wpad-{os.getpid()}"
        add = subprocess.run(["ip", "netns", "add", self.ns], capture_output=True, text=True)
        if add.returncode != 0:
            self.skipTest(f"cannot make a network namespace (needs root): {add.stderr.strip()}")
        self.etc = f"/etc/netns/{self.ns}"
        os.makedirs(self.etc)
        with open(os.path.join(self.etc, "resolv.conf"), "w") as f:
            # Nothing answers DNS in the namespace: only /etc/hosts names resolve.
            f.write(f"search {DOMAIN}\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        with open(os.path.join(self.etc, "hosts"), "w") as f:
            # Only the parent domain's wpad host exists, so the agent must fall from the first name to it.
            # wpad.DOMAIN is another loopback address, where a case may put a captive portal.
            f.write(f"127.0.0.1 localhost wpad.tunnel.test\n127.0.0.2 wpad.{DOMAIN}\n::1 localhost\n")
        subprocess.run(["ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up"], check=True)

    def tearDown(self):
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)

    def test_inside_a_namespace_of_its_own(self):
        here = os.path.dirname(os.path.abspath(__file__))
        run = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-m", "unittest", "-v", "wpad_inside"],
                             cwd=here, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "WPAD_TEST_DOMAIN": DOMAIN})
        sys.stderr.write(run.stderr)
        self.assertEqual(run.returncode, 0, "the WPAD cases failed inside the namespace (their output is above)")
        self.assertNotIn("skipped", run.stderr)


if __name__ == "__main__":
    unittest.main()
