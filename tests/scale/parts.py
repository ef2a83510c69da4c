"""The real parts of a scaled-out deployment, run locally for tests/test_scale.py
and tests/bench/bench_pooled.py: a streaming hot standby made with
pg_basebackup -R, pgbouncer in transaction mode, and haproxy health-checking
collectors on /readyz. All from Debian packages (deploy/install-deps.sh), all
on unix sockets or 127.0.0.1, PostgreSQL and pgbouncer as user postgres."""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from conftest import PG_BIN, as_postgres, free_port, wait_until

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def _postgres_owned_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(d, 0o755)
    return d


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Standby:
    """A hot standby of primary (a conftest PgCluster): pg_basebackup -R, then
    its own socket directory. stop()/start() keep the data directory."""

    def __init__(self, primary):
        self.primary = primary
        self.dir = _postgres_owned_dir("vgc-standby-")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.user = primary.user
        subprocess.run(as_postgres([f"{PG_BIN}/pg_basebackup", "-h", primary.sock, "-U",
                                    primary.user, "-D", self.data, "-R", "-X", "stream",
                                    "--no-sync", "-c", "fast"]),
                       check=True, stdout=subprocess.DEVNULL)

    def start(self):
        opts = (f"-k {self.sock} -c listen_addresses='' -c hot_standby=on "
                f"-c hot_standby_feedback=on -c max_connections=300 -c fsync=off")
        subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-w", "-D", self.data, "-o", opts,
                                    "-l", os.path.join(self.dir, "pg.log"), "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        return self

    def stop(self, mode="fast"):
        subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-w", "-D", self.data, "-m", mode,
                                    "stop"]), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, dbname):
        return f"host={self.sock} dbname={dbname} user={self.user}"

    def wait_streaming(self, timeout=30):
        """Until the primary lists this standby as streaming."""
        conn = self.primary.connect()
        try:
            def streaming():
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                    return cur.fetchone()[0] > 0
            wait_until(streaming, timeout, "standby streaming from the primary", interval=0.1)
        finally:
            conn.close()


class Pgbouncer:
    """pgbouncer 1.18 in pool_mode = transaction in front of primary's socket,
    on 127.0.0.1:port and a unix socket in its directory. restart() stops it at once (SIGTERM: every client and
    server connection is cut) and starts it again on the same port."""

    def __init__(self, primary, port=None, pool_size=20):
        self.primary = primary
        self.port = port or free_port()
        self.dir = _postgres_owned_dir("vgc-pgbouncer-")
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.log_path = os.path.join(self.dir, "pgbouncer.log")
        _write(self.ini, f"""[databases]
* = host={primary.sock} user={primary.user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir = {self.dir}
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {self.log_path}
pidfile = {os.path.join(self.dir, "pgbouncer.pid")}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(as_postgres([PGBOUNCER, self.ini]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.proc.poll() is not None or _port_open(self.port), 15,
                   f"pgbouncer listening on {self.port}")
        assert self.proc.poll() is None, f"pgbouncer exited:\n{self.log()}"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # runuser forwards the signal to pgbouncer.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        wait_until(lambda: not _port_open(self.port), 15, f"pgbouncer port {self.port} closed")

    def restart(self):
        self.stop()
        self.start()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def conninfo(self, dbname, unix=False):
        """Over TCP on 127.0.0.1, or (unix) over its socket in self.dir."""
        host = self.dir if unix else "127.0.0.1"
        return f"host={host} port={self.port} dbname={dbname} user={self.primary.user}"


def haproxy_config(port, backends, check_inter_ms=500):
    """The test's haproxy.cfg: deploy/haproxy.cfg's shape on local ports."""
    servers = "\n".join(f"    server c{i} 127.0.0.1:{p} check inter {check_inter_ms} "
                        f"fall 2 rise 2" for i, p in enumerate(backends))
    return f"""global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
    retry-on conn-failure empty-response 503

frontend vgc
    bind 127.0.0.1:{port}
    default_backend collectors

backend collectors
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""


def localise_example(path, port, backends):
    out = []
    with open(path) as f:
        for line in f:
            word = line.split()[0] if line.split() else ""
            if word == "log" or line.strip() == "option httplog":
                continue
            if word == "bind" and "ssl" not in line:
                line = f"    bind 127.0.0.1:{port}\n"
            if word == "server":
                continue
            out.append(line)
    out += [f"    server c{i} 127.0.0.1:{p}\n" for i, p in enumerate(backends)]
    return "".join(out)


class Haproxy:
    """haproxy 2.6 in the foreground, balancing over backends (ports)."""

    def __init__(self, backends, port=None, example=None):
        """example: the path of a config like deploy/haproxy.cfg to run as it
        is, but bound to 127.0.0.1:port, with backends as its servers and no
        syslog."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="vgc-haproxy-")
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        if example:
            _write(self.cfg, localise_example(example, self.port, backends))
        else:
            _write(self.cfg, haproxy_config(self.port, backends))
        check = subprocess.run([HAPROXY, "-c", "-f", self.cfg], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or _port_open(self.port), 15,
                   f"haproxy listening on {self.port}")
        assert self.proc.poll() is None, self.output()

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def destroy(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
