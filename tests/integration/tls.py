"""A test CA, certificates made with openssl, and nghttpx terminating TLS (HTTP/2 and HTTP/1.1) in
front of the test server, all in a temporary directory and on loopback."""
import base64
import hashlib
import os
import shutil
import subprocess
import tempfile

from harness import Process, start_on_free_port
from proxies import wait_listening


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, a client certificate, and a
    second CA that signed nothing here (to show an untrusted server)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pki-")
        d = self.dir
        for ca in ("ca", "other-ca"):
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                    "-days", "2", "-subj", f"/CN=tunnel-agent test {ca}", cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        with open(os.path.join(d, "client.ext"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        for name in ("server", "client"):
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                    "-subj", f"/CN=tunnel-agent test {name}", cwd=d)
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)

    def path(self, name):
        return os.path.join(self.dir, name)

    def pin(self, cert="server.pem"):
        """curl's sha256//BASE64 pin of a certificate's public key."""
        pub = subprocess.run(["openssl", "x509", "-in", self.path(cert), "-pubkey", "-noout"], capture_output=True,
                             check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                             check=True).stdout
        return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def start_nghttpx(args, log_path):
    """Starts nghttpx with `args(port)` on a free port (start_on_free_port); returns (port, process).
    When it does not come up, the error shows its error log."""
    def ready(proc, port):
        try:
            wait_listening(port, "nghttpx", process=proc)
        except AssertionError as e:
            log = open(log_path, errors="replace").read()[-2000:] if os.path.exists(log_path) else ""
            raise AssertionError(f"{e}\n--- {log_path}:\n{log}") from None

    return start_on_free_port(lambda port: Process(args(port)), ready)


class Nghttpx:
    """nghttpx with TLS on a free port, forwarding to the test server; optionally asking for a
    client certificate signed by the test CA."""

    def __init__(self, pki, backend_port, client_cert=False):
        def args(port):
            extra = ["--verify-client", f"--verify-client-cacert={pki.path('ca.pem')}"] if client_cert else []
            return ["nghttpx", "--conf=/dev/null", *extra, f"--frontend=127.0.0.1,{port}", f"--backend=127.0.0.1,{backend_port}",
                    "--workers=1", "--no-ocsp", "--backend-read-timeout=120s", "--frontend-read-timeout=120s",
                    f"--errorlog-file={pki.path('nghttpx.log')}", f"--accesslog-file={pki.path('access.log')}",
                    pki.path("server.key"), pki.path("server.pem")]
        self.port, self.proc = start_nghttpx(args, pki.path("nghttpx.log"))
        # The name the agent verifies: tests/windows/run sets localhost, since the Schannel of
        # Debian's curl (7.88) matches a certificate's DNS names only, never an IP address.
        host = os.environ.get("TUNNEL_TEST_TLS_HOST", "127.0.0.1")
        self.url = f"https://{host}:{self.port}/.~~spring-boot!~/debug"

    def stop(self):
        self.proc.stop()


class NghttpxProxy:
    """nghttpx as an HTTPS forward proxy (its HTTP/2 proxy mode, -s): TLS from the client, then on
    to an HTTP proxy behind it (squid), as a corporate TLS proxy in front of a cache."""

    def __init__(self, pki, backend_proxy_port):
        def args(port):
            return ["nghttpx", "--conf=/dev/null", "--http2-proxy", f"--frontend=127.0.0.1,{port}",
                    f"--backend=127.0.0.1,{backend_proxy_port}", "--workers=1", "--no-ocsp",
                    "--backend-read-timeout=120s", "--frontend-read-timeout=120s",
                    f"--errorlog-file={pki.path('nghttpx-proxy.log')}", pki.path("server.key"), pki.path("server.pem")]
        self.port, self.proc = start_nghttpx(args, pki.path("nghttpx-proxy.log"))
        self.url = f"https://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.stop()

