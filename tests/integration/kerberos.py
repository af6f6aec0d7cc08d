"""A real MIT Kerberos KDC (Debian's krb5-kdc) on loopback, with a throw-away realm in a temporary
directory: a user principal with a password, service principals with a keytab, and tickets from a
real `kinit` in a private credential cache. Nothing outside the directory is read or written: every
program gets KRB5_CONFIG and KRB5_KDC_PROFILE pointing into it."""
import os
import shutil
import subprocess
import tempfile

from harness import Process, start_on_free_port, wait_listening

KDC = "/usr/sbin/krb5kdc"


def available():
    """Why a KDC cannot run here, or "" when it can (the packages scripts/setup installs)."""
    missing = [p for p in (KDC, "/usr/sbin/kdb5_util", "/usr/sbin/kadmin.local", "/usr/bin/kinit")
               if not os.path.exists(p)]
    return f"missing {', '.join(missing)} (krb5-kdc, krb5-admin-server, krb5-user)" if missing else ""


class Kdc:
    def __init__(self, realm="TUNNEL.TEST"):
        self.realm = realm
        self.dir = tempfile.mkdtemp(prefix="kdc-")
        os.chmod(self.dir, 0o755)  # squid's helper, run as squid's user, reads the config and keytab
        self.config = os.path.join(self.dir, "krb5.conf")
        self.kdc_profile = os.path.join(self.dir, "kdc.conf")
        self.env = {"KRB5_CONFIG": self.config, "KRB5_KDC_PROFILE": self.kdc_profile,
                    "KRB5CCNAME": f"FILE:{self.dir}/none", "KRB5RCACHETYPE": "none"}

        def launch(port):
            self._write_profiles(port)
            database = os.path.join(self.dir, "principal")
            if not os.path.exists(database):
                self._run(["/usr/sbin/kdb5_util", "create", "-s", "-r", realm, "-P", "master-password-for-tests"])
            return Process([KDC, "-n", "-r", realm], env=self.env)

        self.port, self.proc = start_on_free_port(launch, lambda proc, port: wait_listening(port, "krb5kdc",
                                                                                             process=proc))

    def _write_profiles(self, port):
        with open(self.config, "w") as f:
            f.write(f"""[libdefaults]
    default_realm = {self.realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
[realms]
    {self.realm} = {{
        kdc = 127.0.0.1:{port}
    }}
[domain_realm]
    localhost = {self.realm}
""")
        with open(self.kdc_profile, "w") as f:
            f.write(f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}
[realms]
    {self.realm} = {{
        database_name = {self.dir}/principal
        key_stash_file = {self.dir}/stash
        acl_file = {self.dir}/kadm5.acl
        max_life = 1h
    }}
[logging]
    kdc = FILE:{self.dir}/kdc.log
""")
        for path in (self.config, self.kdc_profile):
            os.chmod(path, 0o644)

    def _run(self, args, stdin=None):
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, env={**os.environ, **self.env},
                              timeout=30)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def kadmin(self, query):
        return self._run(["/usr/sbin/kadmin.local", "-r", self.realm, "-q", query])

    def add_user(self, name, password):
        """A user principal; `password` is one word (kadmin.local splits its query on spaces)."""
        self.kadmin(f"addprinc -pw {password} {name}")

    def add_service(self, principal, keytab):
        """A service principal (HTTP/localhost) with a random key, written to `keytab`."""
        self.kadmin(f"addprinc -randkey {principal}")
        self.kadmin(f"ktadd -k {keytab} {principal}")
        os.chmod(keytab, 0o644)  # a throw-away key, read by a helper that runs as another user

    def kinit(self, name, password, cache):
        """A ticket for `name` in the credential cache file `cache`, as a user's kinit makes it."""
        env = {**os.environ, **self.env, "KRB5CCNAME": f"FILE:{cache}"}
        done = subprocess.run(["/usr/bin/kinit", name], input=password + "\n", capture_output=True, text=True,
                              env=env, timeout=30)
        if done.returncode != 0:
            raise AssertionError(f"kinit {name} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def log(self):
        try:
            with open(os.path.join(self.dir, "kdc.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
