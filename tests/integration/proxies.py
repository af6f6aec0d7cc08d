"""Real proxies for the tests: squid and tinyproxy from Debian, each started in the foreground with
its own configuration on a free loopback port, logging into a temporary directory."""
import os
import shutil
import subprocess
import tempfile

from harness import Process, start_on_free_port, wait_listening


class ProxyProcess:
    """A proxy run in the foreground from a configuration in its own temporary directory."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"{name}-")
        os.chmod(self.dir, 0o777)  # both drop root privileges to their own user
        self.port = self.url = None  # chosen by start()
        self.env = None  # more environment for the proxy and its helpers
        self.log_file = os.path.join(self.dir, f"{name}.log")

    def write_conf(self, name, lines):
        self.conf = os.path.join(self.dir, name)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def run(self, args, what):
        self.args, self.what = args, what
        self.proc = Process(args, env=self.env)
        wait_listening(self.port, what, process=self.proc)

    def start(self, conf_name, lines_for, args, what):
        """Writes the configuration `lines_for(port)` and runs the proxy on a free port
        (start_on_free_port: another one when the port was taken before the proxy bound it)."""
        def launch(port):
            self.write_conf(conf_name, lines_for(port))
            for name in os.listdir(self.dir):
                if os.path.isfile(os.path.join(self.dir, name)):
                    os.chmod(os.path.join(self.dir, name), 0o666)
            return Process(args, env=self.env)

        self.args, self.what = args, what
        self.port, self.proc = start_on_free_port(launch, lambda proc, port: wait_listening(port, what, process=proc))
        self.url = f"http://127.0.0.1:{self.port}"
        self.host_url = f"http://localhost:{self.port}"  # by name, as a Kerberos service is known

    def restart(self):
        """Stops the proxy (its connections die with it) and starts it again on the same port."""
        self.proc.stop()
        self.run(self.args, self.what)

    def log(self):
        try:
            with open(self.log_file) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Squid(ProxyProcess):
    """squid with no login, or with a Basic, Digest or NTLM (squid's fake NTLM helper) login, or a
    Negotiate (Kerberos) login checked by squid's negotiate_kerberos_auth against `kdc` (a
    kerberos.Kdc), as the service HTTP/localhost: reach it as `self.host_url`, by that name.
    `deny_port`: refuse CONNECT to that port (403).
    `inspect_trusting` (a CA file): inspect TLS, as a company gateway does (ssl-bump, squid-openssl):
    every CONNECT is answered by squid itself with a certificate for the host it asked for, minted
    by squid's own CA (`self.inspect_ca`, CN "Example Corp TLS Inspection CA"), and squid makes its
    own TLS connection onwards, trusting the servers that `inspect_trusting` signed."""

    def __init__(self, auth=None, users=None, deny_port=None, kdc=None, inspect_trusting=None):
        super().__init__("squid")
        lines = [
            f"pid_filename {self.dir}/squid.pid",
            f"cache_log {self.dir}/cache.log",
            f"access_log stdio:{self.log_file} squid",
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
        elif auth == "negotiate":
            keytab = os.path.join(self.dir, "proxy.keytab")
            kdc.add_service("HTTP/localhost", keytab)
            self.env = {**kdc.env, "KRB5_KTNAME": f"FILE:{keytab}"}
            lines += [f"auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -i "
                      f"-s HTTP/localhost@{kdc.realm} -k {keytab}",
                      "auth_param negotiate children 2", "auth_param negotiate keep_alive on"]
        elif auth == "ntlm":
            lines += ["auth_param ntlm program /usr/lib/squid/ntlm_fake_auth", "auth_param ntlm children 2"]
        if auth:
            lines += ["acl logged_in proxy_auth REQUIRED", "http_access allow logged_in", "http_access deny all"]
        else:
            lines += ["http_access allow all"]
        port_options = ""
        if inspect_trusting:
            port_options = self._inspection(inspect_trusting, lines)
        self.start("squid.conf", lambda port: [f"http_port 127.0.0.1:{port}{port_options}", *lines],
                   ["squid", "-N", "-f", os.path.join(self.dir, "squid.conf")], "squid")


    INSPECT_CA_NAME = "Example Corp TLS Inspection CA"

    def _inspection(self, upstream_ca, lines):
        d = self.dir
        self.inspect_ca = os.path.join(d, "inspect-ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "inspect-ca.key",
                        "-out", "inspect-ca.pem", "-days", "2", "-subj", f"/O=Example Corp/CN={self.INSPECT_CA_NAME}",
                        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
                       cwd=d, check=True, capture_output=True)
        database = os.path.join(d, "ssl_db")
        subprocess.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", database, "-M", "4MB"], check=True,
                       capture_output=True)
        subprocess.run(["chown", "-R", "proxy:proxy", database], check=False, capture_output=True)
        lines += [f"sslcrtd_program /usr/lib/squid/security_file_certgen -s {database} -M 4MB",
                  "sslcrtd_children 2",
                  f"tls_outgoing_options cafile={upstream_ca}",
                  "acl step1 at_step SslBump1", "ssl_bump peek step1", "ssl_bump bump all"]
        return (f" ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=4MB "
                f"tls-cert={d}/inspect-ca.pem tls-key={d}/inspect-ca.key")


class Tinyproxy(ProxyProcess):
    """tinyproxy, with a Basic login when `user` is given."""

    def __init__(self, user=None, password=None):
        super().__init__("tinyproxy")
        lines = ["Listen 127.0.0.1", "Timeout 600", f'LogFile "{self.log_file}"',
                 "LogLevel Connect", f'PidFile "{self.dir}/tinyproxy.pid"', "MaxClients 64", "User nobody",
                 "Group nogroup"]
        if user:
            lines.append(f"BasicAuth {user} {password}")
        self.start("tinyproxy.conf", lambda port: [f"Port {port}", *lines],
                   ["tinyproxy", "-d", "-c", os.path.join(self.dir, "tinyproxy.conf")], "tinyproxy")
