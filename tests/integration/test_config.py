"""The config file and the TUNNEL_AGENT_* environment with the real agent: forwards from [[forward]]
tables, each with its own secret, against test servers that each require their own."""
import os
import re
import signal
import subprocess
import tempfile
import unittest

from harness import AGENT, ENDPOINT_PATH, Process, Target, connect, dead_port, exchange, start_server, wait_until
from proxies import Squid


class ConfigFile(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="tunnel-config-test-")
        os.makedirs(os.path.join(self.dir.name, "tunnel-agent"))
        self.env = {"XDG_CONFIG_HOME": self.dir.name}
        self.targets, self.servers, self.urls, self.secret_files = [], [], [], []
        for i in range(2):
            secret_file = self.write(f"{i}.secret", f"secret-of-server-{i}\n")
            target = Target()
            server, port = start_server(target.port, "--long-poll-ms", "1000", "--secret-file", secret_file)
            self.targets.append(target)
            self.servers.append(server)
            self.urls.append(f"http://127.0.0.1:{port}{ENDPOINT_PATH}")
            self.secret_files.append(secret_file)

    def tearDown(self):
        for server in self.servers:
            server.stop(signal.SIGKILL)
        for target in self.targets:
            target.close()
        self.dir.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_forward_tables_each_with_its_own_secret(self):
        self.write("tunnel-agent/config.toml", "".join(
            f'[[forward]]\nlisten = "127.0.0.1:0"\nurl = "{url}"\nsecret-file = "{secret}"\nheader = "X-Team: t{i}"\n'
            for i, (url, secret) in enumerate(zip(self.urls, self.secret_files))))
        agent = Process([AGENT], env=self.env)
        try:
            for i, url in enumerate(self.urls):
                m = agent.wait_for_line(rf"listening on 127\.0\.0\.1:(\d+), tunnelling to {re.escape(url)}")
                payload = f"through forward {i} ".encode() * 1000
                with connect(int(m.group(1))) as s:
                    self.assertEqual(exchange(s, payload, timeout=30), payload)
            self.assertEqual(agent.count(r"refused|failed"), 0, agent.output())
            for secret_text in ("secret-of-server-0", "secret-of-server-1"):
                self.assertNotIn(secret_text, agent.output())
        finally:
            code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())

    def test_each_forward_through_its_own_proxy_or_none(self):
        # Forward 0 through squid A, forward 1 through squid B, forward 2 direct although the
        # environment names a proxy (a dead port: going through it would fail).
        third_target = Target()
        third, third_port = start_server(third_target.port, "--long-poll-ms", "1000")
        self.servers.append(third)
        self.targets.append(third_target)
        squids = [Squid(), Squid()]
        try:
            direct_url = f"http://127.0.0.1:{third_port}{ENDPOINT_PATH}"
            tables = [f'[[forward]]\nlisten = "127.0.0.1:0"\nurl = "{url}"\nsecret-file = "{secret}"\n'
                      f'proxy = "{squid.url}"\n'
                      for url, secret, squid in zip(self.urls, self.secret_files, squids)]
            tables.append(f'[[forward]]\nlisten = "127.0.0.1:0"\nurl = "{direct_url}"\nno-proxy = true\n')
            self.write("tunnel-agent/config.toml", "".join(tables))
            env = {**self.env, "http_proxy": f"http://127.0.0.1:{dead_port()}", "all_proxy": "", "ALL_PROXY": ""}
            printed = subprocess.run([AGENT, "--print-config"], capture_output=True, text=True, env={**os.environ, **env},
                                     timeout=30).stdout
            for i, squid in enumerate(squids):
                self.assertRegex(printed, rf"# forward {i + 1} \(.*\): proxy 1 127\.0\.0\.1:{squid.port} "
                                          rf"\(from \[\[forward\]\] at config file .*config\.toml line {1 + 5 * i}\)")
            self.assertRegex(printed, r"# forward 3 \(.*\): direct: no-proxy in \[\[forward\]\]")
            agent = Process([AGENT], env=env)
            try:
                for i, url in enumerate([*self.urls, direct_url]):
                    m = agent.wait_for_line(rf"listening on 127\.0\.0\.1:(\d+), tunnelling to {re.escape(url)}")
                    payload = f"through forward {i} ".encode() * 1000
                    with connect(int(m.group(1))) as s:
                        self.assertEqual(exchange(s, payload, timeout=30), payload)
                self.assertEqual(agent.count(r"refused|failed"), 0, agent.output())
                agent.wait_for_line(rf"direct to {re.escape(direct_url)}: no-proxy in \[\[forward\]\]")
            finally:
                code, _ = agent.stop()
            self.assertEqual(code, 0, agent.output())
            # Each squid carried its own forward's tunnel and not the other's.
            for squid, url, other in ((squids[0], self.urls[0], self.urls[1]), (squids[1], self.urls[1], self.urls[0])):
                port = url.split(":")[2].split("/")[0]
                other_port = other.split(":")[2].split("/")[0]
                wait_until(lambda: f"CONNECT 127.0.0.1:{port}" in squid.log(), 10, "squid to log its forward's tunnel")
                self.assertNotIn(f"CONNECT 127.0.0.1:{other_port}", squid.log())
                self.assertNotIn(f"127.0.0.1:{third_port}", squid.log())
        finally:
            for squid in squids:
                squid.stop()

    def test_environment_overrides_the_file_and_print_config_says_so(self):
        # The file names server 0's secret; TUNNEL_AGENT_SECRET (the environment) wins over it.
        self.write("tunnel-agent/config.toml", f'secret-file = "{self.secret_files[0]}"\nretry-window = 12\n')
        env = dict(self.env, TUNNEL_AGENT_SECRET="secret-of-server-1", TUNNEL_AGENT_URL=self.urls[1], TUNNEL_AGENT_LISTEN="127.0.0.1:0")
        printed = subprocess.run([AGENT, "--print-config", "--request-timeout", "20"], capture_output=True, text=True,
                                 timeout=30, env=dict(os.environ, **env))
        self.assertEqual(printed.returncode, 0, printed.stderr)
        out = printed.stdout
        self.assertRegex(out, r'url = "' + re.escape(self.urls[1]) + r'"\s+# TUNNEL_AGENT_URL')
        self.assertRegex(out, r"retry-window = 12\s+# config file line 2")
        self.assertRegex(out, r"request-timeout = 20\s+# command line")
        self.assertIn("# secret: from TUNNEL_AGENT_SECRET (not shown)", out)
        self.assertNotIn("secret-of-server", out)

        agent = Process([AGENT], env=env)
        try:
            m = agent.wait_for_line(rf"listening on 127\.0\.0\.1:(\d+), tunnelling to {re.escape(self.urls[1])}")
            with connect(int(m.group(1))) as s:
                self.assertEqual(exchange(s, b"ping" * 100, timeout=30), b"ping" * 100)
        finally:
            code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())

    def test_a_bad_file_is_one_clear_line_and_exit_2(self):
        self.write("tunnel-agent/config.toml", "retry-window = 12\nlisten-on = 8000\n")
        run = subprocess.run([AGENT, self.urls[0]], capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, **self.env))
        self.assertEqual(run.returncode, 2)
        lines = run.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, run.stderr)
        self.assertIn("config.toml line 2: unknown key 'listen-on'", lines[0])
        self.assertIn("--no-config", lines[0])


if __name__ == "__main__":
    unittest.main()
