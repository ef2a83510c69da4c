"""The parts of a Patroni cluster run on loopback for tests/test_ha.py: one
etcd, and Patroni nodes running deploy/ha/patroni.yml with only the names,
addresses, ports and directories replaced. Patroni and PostgreSQL run as user
postgres in directories it owns; etcd runs as whoever runs the tests."""

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile

import httpx
import yaml

from conftest import PG_BIN, ROOT, as_postgres, free_port, wait_until

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
PATRONI = shutil.which("patroni") or "/usr/bin/patroni"
PATRONICTL = shutil.which("patronictl") or "/usr/bin/patronictl"
PATRONI_YML = os.path.join(ROOT, "deploy", "ha", "patroni.yml")


def _postgres_owned_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(d, 0o755)
    return d


class Etcd:
    """One etcd member on 127.0.0.1, its data in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vgc-etcd-")
        self.port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "etcd.log"), "wb")
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.proc = subprocess.Popen(
            [ETCD, "--name", "vgc-ha", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"vgc-ha={peer}", "--initial-cluster-state", "new"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._healthy, 30, "etcd answering /health", interval=0.1)

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited {self.proc.returncode}")
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def destroy(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PatroniNode:
    """One Patroni node on loopback running deploy/ha/patroni.yml. Its
    PostgreSQL listens on 127.0.0.1:pg_port and a unix socket in its dir."""

    def __init__(self, name, scope, etcd):
        self.name, self.scope = name, scope
        self.dir = _postgres_owned_dir(f"vgc-{name}-")
        self.pg_port, self.api_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        with open(PATRONI_YML) as f:
            cfg = yaml.safe_load(f)
        cfg["scope"], cfg["name"] = scope, name
        cfg["restapi"].update(listen=f"127.0.0.1:{self.api_port}",
                              connect_address=f"127.0.0.1:{self.api_port}")
        cfg.pop("etcd3", None)
        cfg["etcd3"] = {"hosts": f"127.0.0.1:{etcd.port}"}
        pg = cfg["postgresql"]
        pg.update(listen=f"127.0.0.1:{self.pg_port}",
                  connect_address=f"127.0.0.1:{self.pg_port}",
                  data_dir=os.path.join(self.dir, "data"), bin_dir=PG_BIN,
                  pgpass=os.path.join(self.dir, "pgpass"))
        # Loopback only: trust instead of passwords; one user for everything.
        pg["authentication"] = {k: {"username": "postgres"}
                                for k in ("superuser", "replication", "rewind")}
        cfg["bootstrap"]["pg_hba"] = ["local all all trust", "host all all 127.0.0.1/32 trust",
                                      "host replication all 127.0.0.1/32 trust"]
        pg["parameters"] = dict(pg.get("parameters") or {}, unix_socket_directories=self.dir,
                                fsync="off", shared_buffers="128MB")
        self.config = os.path.join(self.dir, "patroni.yml")
        with open(self.config, "w") as f:
            yaml.safe_dump(cfg, f)
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(os.path.join(self.dir, "patroni.log"), "ab")
        self.proc = subprocess.Popen(as_postgres([PATRONI, self.config]), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def status(self):
        """Patroni's GET /patroni as a dict, or None while it does not answer."""
        try:
            r = httpx.get(self.api + "/patroni", timeout=2)
            return r.json() if r.status_code in (200, 503) else None
        except (httpx.HTTPError, ValueError):
            return None

    def check(self, path):
        """The status GET /primary, /replica or /sync answers, None if none."""
        try:
            return httpx.get(self.api + path, timeout=2).status_code
        except httpx.HTTPError:
            return None

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill(self):
        """SIGKILLs Patroni and its postmaster, as a lost machine would go:
        no leader key released, no checkpoint, no goodbye to the standby."""
        pid = self.postmaster_pid()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def destroy(self):
        self.kill()
        # The postmaster's children exit on their own once it is gone; wait
        # until none holds the data directory before removing it.
        if self.log:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, dbname):
        return f"host={self.dir} port={self.pg_port} dbname={dbname} user=postgres"

    def output(self):
        try:
            with open(os.path.join(self.dir, "patroni.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def patronictl(node, *args):
    """Runs patronictl against node's cluster; returns the CompletedProcess."""
    return subprocess.run(as_postgres([PATRONICTL, "-c", node.config, *args]),
                          capture_output=True, text=True, timeout=60)


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HAPROXY_CFG = os.path.join(ROOT, "deploy", "ha", "haproxy.cfg")


class PatroniHaproxy:
    """haproxy running deploy/ha/haproxy.cfg as it is, but bound to loopback
    ports, with nodes as its servers (their PostgreSQL and REST ports) and no
    syslog. primary_port reaches the leader, replica_port a standby."""

    def __init__(self, nodes):
        self.primary_port, self.replica_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="vgc-haproxy-")
        with open(HAPROXY_CFG) as f:
            text = f.read()
        text = re.sub(r"^\s*log .*\n", "", text, flags=re.M)
        text = text.replace("bind :5000", f"bind 127.0.0.1:{self.primary_port}")
        text = text.replace("bind :5001", f"bind 127.0.0.1:{self.replica_port}")
        for i, n in enumerate(nodes, 1):
            text = text.replace(f"10.0.0.{i}:5432", f"127.0.0.1:{n.pg_port}")
            text = re.sub(rf"(server pg{i} .* check port )8008", rf"\g<1>{n.api_port}", text)
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(text)
        check = subprocess.run([HAPROXY, "-c", "-f", self.cfg], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(os.path.join(self.dir, "haproxy.log"), "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def conninfo(self, port, dbname):
        return f"host=127.0.0.1 port={port} dbname={dbname} user=postgres connect_timeout=3"

    def destroy(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
