"""Proxy auto-configuration: a PAC script served over HTTP by a local server, or read from a file,
run by the agent (pacparser) for each forward's URL; each forward goes through the squid the script
picks for its host, the next choice when the first does not answer, or direct. And the desktop's
proxy settings: GNOME's, read through GSettings (its keyfile backend, in a private config
directory: a desktop keeps them in dconf, through the same API), and KDE's kioslaverc."""
import http.server
import os
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import unittest

from harness import NO_PROXY_ENV, AGENT, ENDPOINT_PATH, Process, Target, connect, dead_port, exchange, start_server, wait_until
from proxies import Squid
from test_check import check


class PacServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, script, port=0, path="/proxy.pac", host="127.0.0.1",
                 content_type="application/x-ns-proxy-autoconfig"):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):
                self.requests += 1
                if handler.path != path:
                    handler.send_error(404)
                    return
                body = script.encode()
                handler.send_response(200)
                handler.send_header("Content-Type", content_type)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):
                pass

        self.requests = 0
        super().__init__((host, port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self.server_address[1]}{path}"

    def stop(self):
        self.shutdown()
        self.server_close()


class TwoSquids(unittest.TestCase):
    """Two squids, two test servers each in front of an echo, and a scratch directory."""

    def setUp(self):
        self.stops = []
        self.squids = [Squid(), Squid()]
        self.stops += [s.stop for s in self.squids]
        self.servers = []
        for _ in range(2):
            target = Target()
            server, port = start_server(target.port, "--long-poll-ms", "1000")
            self.stops += [target.close, server.stop]
            self.servers.append(port)
        self.dir = tempfile.mkdtemp(prefix="pac-")
        self.stops.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))

    def tearDown(self):
        for stop in reversed(self.stops):
            stop()


class Pac(TwoSquids):

    @staticmethod
    def script(by_host):
        """FindProxyForURL answering `by_host[host]`, else DIRECT."""
        cases = "".join(f"  if (host == '{host}') return '{answer}';\n" for host, answer in by_host.items())
        return f"function FindProxyForURL(url, host) {{\n{cases}  return 'DIRECT';\n}}\n"

    def run_agent(self, pac, urls):
        args = [AGENT, "--pac", pac]
        for url in urls:
            args += ["-L", f"127.0.0.1:0={url}"]
        agent = Process(args, env=NO_PROXY_ENV)
        self.stops.append(agent.stop)
        ports = []
        for url in urls:
            m = agent.wait_for_line(rf"listening on 127\.0\.0\.1:(\d+), tunnelling to {re.escape(url)}")
            ports.append(int(m.group(1)))
        return agent, ports

    def echo(self, port, text):
        payload = text.encode() * 2000
        with connect(port) as s:
            self.assertEqual(exchange(s, payload, timeout=30), payload)

    def test_a_served_pac_picks_a_squid_per_host(self):
        a, b = self.squids
        urls = [f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}", f"http://localhost:{self.servers[1]}{ENDPOINT_PATH}"]
        pac = PacServer(self.script({"127.0.0.1": f"PROXY 127.0.0.1:{a.port}", "localhost": f"PROXY 127.0.0.1:{b.port}"}))
        self.stops.append(pac.stop)
        agent, ports = self.run_agent(pac.url, urls)
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{a.port} \(from PAC {re.escape(pac.url)}, which answered "
                            rf"\"PROXY 127\.0\.0\.1:{a.port}\"\)")
        for i, port in enumerate(ports):
            self.echo(port, f"forward {i} ")
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        self.assertEqual(pac.requests, 1, "the script is fetched once")
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.servers[0]}" in a.log(), 10, "squid A to log forward 0")
        wait_until(lambda: f"CONNECT localhost:{self.servers[1]}" in b.log(), 10, "squid B to log forward 1")
        self.assertNotIn(f":{self.servers[1]}", a.log())
        self.assertNotIn(f":{self.servers[0]}", b.log())

    def test_a_pac_file_whose_first_proxy_is_down_falls_to_the_next_or_goes_direct(self):
        b = self.squids[1]
        down = dead_port()
        path = os.path.join(self.dir, "proxy.pac")
        with open(path, "w") as f:
            f.write(self.script({"127.0.0.1": f"PROXY 127.0.0.1:{down}; PROXY 127.0.0.1:{b.port}; DIRECT",
                                 "localhost": "DIRECT"}))
        urls = [f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}", f"http://localhost:{self.servers[1]}{ENDPOINT_PATH}"]
        agent, ports = self.run_agent(path, urls)
        line = agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{b.port} \(from PAC {re.escape(path)}").string
        self.assertIn(f"not taken: 127.0.0.1:{down}: Connection refused", line)
        agent.wait_for_line(rf"direct to {re.escape(urls[1])}: PAC {re.escape(path)} answered \"DIRECT\"")
        for i, port in enumerate(ports):
            self.echo(port, f"forward {i} ")
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.servers[0]}" in b.log(), 10, "squid B to log forward 0")
        self.assertNotIn(f":{self.servers[1]}", b.log())

    def test_a_proxy_that_goes_down_while_the_agent_runs_gives_way_to_the_next_pac_choice(self):
        a, b = self.squids
        path = os.path.join(self.dir, "proxy.pac")
        with open(path, "w") as f:
            f.write(self.script({"127.0.0.1": f"PROXY 127.0.0.1:{a.port}; PROXY 127.0.0.1:{b.port}; DIRECT"}))
        url = f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}"
        agent, (port,) = self.run_agent(path, [url])
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{a.port} \(from PAC")
        self.echo(port, "through A ")
        agent.wait_for_line(r"session 1 \(.*\) closed after")
        a.proc.stop()  # A goes down: session 2 takes B, and says so
        self.echo(port, "through B ")
        agent.wait_for_line(rf"session 2: cannot connect to proxy 1 \(127\.0\.0\.1:{a.port}, .*; taking the PAC "
                            rf"script's next choice: proxy 127\.0\.0\.1:{b.port}$")
        agent.wait_for_line(r"session 2 \(.*\) closed after")
        b.proc.stop()  # B too: session 3 goes direct, the script's last choice
        # squid writes a CONNECT to its log when the tunnel closes: here, when squid stops.
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.servers[0]}" in b.log(), 10, "squid B to log session 2")
        self.echo(port, "direct ")
        agent.wait_for_line(rf"session 3: cannot connect to proxy 1 \(127\.0\.0\.1:{b.port}, .*; taking the PAC "
                            rf"script's next choice: DIRECT$")
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())
        self.assertEqual(agent.count(r"error"), 0, agent.output())

    def test_check_says_which_proxy_the_pac_chose_and_why(self):
        a = self.squids[0]
        path = os.path.join(self.dir, "proxy.pac")
        down = dead_port()
        with open(path, "w") as f:
            f.write(self.script({"127.0.0.1": f"PROXY 127.0.0.1:{down}; PROXY 127.0.0.1:{a.port}"}))
        code, out = check(f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}", "--pac", path)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, rf"ok +proxy 1 +127\.0\.0\.1:{a.port} \(from PAC {re.escape(path)}, which answered "
                              rf"\"PROXY 127\.0\.0\.1:{down}; PROXY 127\.0\.0\.1:{a.port}\" \(not taken: "
                              rf"127\.0\.0\.1:{down}: Connection refused\)\): CONNECT to 127\.0\.0\.1:{self.servers[0]} accepted")

    def test_a_broken_pac_is_one_line_and_exit_1(self):
        path = os.path.join(self.dir, "broken.pac")
        with open(path, "w") as f:
            f.write("function FindProxyForURL(url, host) { return ")
        run = subprocess.run([AGENT, "--pac", path, f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}"],
                             capture_output=True, text=True, timeout=30, env={**os.environ, **NO_PROXY_ENV})
        self.assertEqual(run.returncode, 1, run.stderr)
        errors = [l for l in run.stderr.splitlines() if " error: " in l]
        self.assertEqual(len(errors), 1, run.stderr)
        self.assertIn(f"PAC {path}: the PAC script does not parse", errors[0])
        run = subprocess.run([AGENT, "--pac", "http://127.0.0.1:%d/none.pac" % dead_port(),
                              f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}"],
                             capture_output=True, text=True, timeout=30, env={**os.environ, **NO_PROXY_ENV})
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertRegex(run.stderr, r"error: cannot get the PAC script http://127\.0\.0\.1:\d+/none\.pac: .*; check --pac")
        # A captive portal or a web server's error page: 200 with HTML, which is no script.
        portal = PacServer("<!DOCTYPE html><html><body>Sign in to continue</body></html>\n", content_type="text/html")
        try:
            run = subprocess.run([AGENT, "--pac", portal.url, f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}"],
                                 capture_output=True, text=True, timeout=30, env={**os.environ, **NO_PROXY_ENV})
        finally:
            portal.stop()
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertIn(f"error: cannot get the PAC script {portal.url}: HTTP 200 but an HTML page, not a PAC script "
                      "(a login or error page?); check --pac", run.stderr)


if __name__ == "__main__":
    unittest.main()


class DesktopSettings(TwoSquids):
    """--proxy-auto on a desktop follows the proxy settings the user made there."""

    def setUp(self):
        super().setUp()
        self.urls = [f"http://127.0.0.1:{self.servers[0]}{ENDPOINT_PATH}",
                     f"http://localhost:{self.servers[1]}{ENDPOINT_PATH}"]

    def gnome(self, groups):
        """GNOME's keys, as GSettings' keyfile backend keeps them: {"system/proxy": {"mode": "'manual'"}}."""
        os.makedirs(os.path.join(self.dir, "glib-2.0", "settings"), exist_ok=True)
        with open(os.path.join(self.dir, "glib-2.0", "settings", "keyfile"), "w") as f:
            for group, keys in groups.items():
                f.write(f"[{group}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items()) + "\n")
        return {"XDG_CURRENT_DESKTOP": "ubuntu:GNOME", "GSETTINGS_BACKEND": "keyfile", "XDG_CONFIG_HOME": self.dir}

    def run_agent(self, env, *extra):
        args = [AGENT, "--proxy-auto", *extra]
        for url in self.urls:
            args += ["-L", f"127.0.0.1:0={url}"]
        agent = Process(args, env={**NO_PROXY_ENV, **env})
        self.stops.append(agent.stop)
        ports = []
        for url in self.urls:
            m = agent.wait_for_line(rf"listening on 127\.0\.0\.1:(\d+), tunnelling to {re.escape(url)}")
            ports.append(int(m.group(1)))
        return agent, ports

    def echo_all(self, agent, ports):
        for i, port in enumerate(ports):
            payload = f"forward {i} ".encode() * 2000
            with connect(port) as s:
                self.assertEqual(exchange(s, payload, timeout=30), payload)
        code, _ = agent.stop()
        self.assertEqual(code, 0, agent.output())

    def test_gnome_manual_names_the_proxy_and_its_exceptions_go_direct(self):
        a = self.squids[0]
        agent, ports = self.run_agent(self.gnome({
            "system/proxy": {"mode": "'manual'", "ignore-hosts": "['localhost', '*.internal']"},
            "system/proxy/http": {"host": "'127.0.0.1'", "port": str(a.port)}}))
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{a.port} \(from GNOME's proxy settings \(org\.gnome\.system\.proxy\)\)")
        agent.wait_for_line(rf"direct to {re.escape(self.urls[1])}: localhost is in the exceptions of GNOME's proxy "
                            rf"settings \(org\.gnome\.system\.proxy\) \(\"localhost\"\)")
        self.echo_all(agent, ports)
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.servers[0]}" in a.log(), 10, "squid to log forward 0")
        self.assertNotIn(f":{self.servers[1]}", a.log())

    def test_gnome_default_exceptions_keep_loopback_direct(self):
        # ignore-hosts left unset: GNOME's default (localhost, 127.0.0.0/8, ::1) applies.
        a = self.squids[0]
        agent, ports = self.run_agent(self.gnome({
            "system/proxy": {"mode": "'manual'"}, "system/proxy/http": {"host": "'127.0.0.1'", "port": str(a.port)}}))
        agent.wait_for_line(rf"direct to {re.escape(self.urls[0])}: 127\.0\.0\.1 is in the exceptions of GNOME's "
                            rf"proxy settings \(org\.gnome\.system\.proxy\) \(\"127\.0\.0\.0/8\"\)")
        self.echo_all(agent, ports)
        self.assertNotIn("CONNECT", a.log())

    def test_gnome_none_goes_direct_and_auto_runs_the_script_it_names(self):
        agent, ports = self.run_agent(self.gnome({"system/proxy": {"mode": "'none'"}}))
        agent.wait_for_line(rf"direct to {re.escape(self.urls[0])}: GNOME's proxy settings \(org\.gnome\.system\.proxy\) "
                            rf"say no proxy")
        self.echo_all(agent, ports)

        a, b = self.squids
        pac = PacServer(Pac.script({"127.0.0.1": f"PROXY 127.0.0.1:{a.port}",
                                          "localhost": f"PROXY 127.0.0.1:{b.port}"}))
        self.stops.append(pac.stop)
        agent, ports = self.run_agent(self.gnome({"system/proxy": {"mode": "'auto'", "autoconfig-url": f"'{pac.url}'"}}))
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{a.port} \(from PAC {re.escape(pac.url)} \(from GNOME's proxy "
                            rf"settings \(org\.gnome\.system\.proxy\)\), which answered")
        self.echo_all(agent, ports)
        wait_until(lambda: f"CONNECT localhost:{self.servers[1]}" in b.log(), 10, "squid B to log forward 1")
        self.assertNotIn(f":{self.servers[1]}", a.log())

    def test_pac_given_on_the_command_line_wins_over_the_desktop(self):
        a, b = self.squids
        path = os.path.join(self.dir, "proxy.pac")
        with open(path, "w") as f:
            f.write(Pac.script({"127.0.0.1": f"PROXY 127.0.0.1:{b.port}"}))
        agent, ports = self.run_agent(self.gnome({
            "system/proxy": {"mode": "'manual'", "ignore-hosts": "@as []"},
            "system/proxy/http": {"host": "'127.0.0.1'", "port": str(a.port)}}), "--pac", path)
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{b.port} \(from PAC {re.escape(path)}, which answered")
        self.echo_all(agent, ports)
        self.assertNotIn("CONNECT", a.log())

    def test_kde_manual_from_kioslaverc(self):
        b = self.squids[1]
        with open(os.path.join(self.dir, "kioslaverc"), "w") as f:
            f.write(f"[Proxy Settings]\nNoProxyFor=.example.org\nProxyType=1\nhttpProxy=http://127.0.0.1 {b.port}\n"
                    f"httpsProxy=\n")
        agent, ports = self.run_agent({"XDG_CURRENT_DESKTOP": "KDE", "XDG_CONFIG_HOME": self.dir})
        rc = re.escape(os.path.join(self.dir, "kioslaverc"))
        agent.wait_for_line(rf"proxy 1: 127\.0\.0\.1:{b.port} \(from KDE's proxy settings \({rc}\)\)")
        self.echo_all(agent, ports)
        wait_until(lambda: f"CONNECT localhost:{self.servers[1]}" in b.log(), 10, "squid to log forward 1")
        wait_until(lambda: f"CONNECT 127.0.0.1:{self.servers[0]}" in b.log(), 10, "squid to log forward 0")
