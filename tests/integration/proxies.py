"""Real proxies for the tests: squid and tinyproxy from Debian, each started in the foreground with
its own configuration on a free loopback port, logging into a temporary directory."""
import os
import shutil
import socket
import subprocess
import tempfile

from harness import Process, free_port, wait_until


def wait_listening(port, what, timeout=30):
    def accepts():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(accepts, timeout, f"{what} to listen on 127.0.0.1:{port}")


class Squid:
    """squid with no login, or with a Basic, Digest or NTLM (squid's fake NTLM helper) login.
    `deny_port`: refuse CONNECT to that port (403)."""

    def __init__(self, auth=None, users=None, deny_port=None):
        self.dir = tempfile.mkdtemp(prefix="squid-")
        os.chmod(self.dir, 0o777)  # squid drops root privileges to its own user
        self.port = free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        lines = [
            f"http_port 127.0.0.1:{self.port}",
            f"pid_filename {self.dir}/squid.pid",
            f"cache_log {self.dir}/cache.log",
            f"access_log stdio:{self.access_log} squid",
            f"coredump_dir {self.dir}",
            "cache deny all",
            "cache_mem 8 MB",
            "shutdown_lifetime 0 seconds",
            "dns_nameservers 127.0.0.1",
            "visible_hostname tunnel-test-squid",
            "acl CONNECT method CONNECT",
        ]
        if deny_port:
            lines += [f"acl denied_port port {deny_port}", "http_access deny CONNECT denied_port"]
        users = users or {}
        if auth == "basic":
            with open(os.path.join(self.dir, "passwd"), "w") as f:
                for user, password in users.items():
                    hashed = subprocess.run(["openssl", "passwd", "-apr1", password], capture_output=True, text=True,
                                            check=True).stdout.strip()
                    f.write(f"{user}:{hashed}\n")
            lines += [f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {self.dir}/passwd",
                      "auth_param basic realm tunnel-test"]
        elif auth == "digest":
            with open(os.path.join(self.dir, "digest"), "w") as f:
                for user, password in users.items():
                    f.write(f"{user}:{password}\n")
            lines += [f"auth_param digest program /usr/lib/squid/digest_file_auth {self.dir}/digest",
                      "auth_param digest realm tunnel-test"]
        elif auth == "ntlm":
            lines += ["auth_param ntlm program /usr/lib/squid/ntlm_fake_auth", "auth_param ntlm children 2"]
        if auth:
            lines += ["acl logged_in proxy_auth REQUIRED", "http_access allow logged_in", "http_access deny all"]
        else:
            lines += ["http_access allow all"]
        self.conf = os.path.join(self.dir, "squid.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o666)
        self.proc = Process(["squid", "-N", "-f", self.conf])
        wait_listening(self.port, "squid")
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        try:
            with open(self.access_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Tinyproxy:
    """tinyproxy, with a Basic login when `user` is given."""

    def __init__(self, user=None, password=None):
        self.dir = tempfile.mkdtemp(prefix="tinyproxy-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.log_file = os.path.join(self.dir, "tinyproxy.log")
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 600", f'LogFile "{self.log_file}"',
                 "LogLevel Connect", f'PidFile "{self.dir}/tinyproxy.pid"', "MaxClients 64", "User nobody",
                 "Group nogroup"]
        if user:
            lines.append(f"BasicAuth {user} {password}")
        self.conf = os.path.join(self.dir, "tinyproxy.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = Process(["tinyproxy", "-d", "-c", self.conf])
        wait_listening(self.port, "tinyproxy")
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        try:
            with open(self.log_file) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
