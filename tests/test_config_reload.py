"""Reload through the config rows' hooks: the TLS certificate and key are
checked before anything changes and re-read on every SIGHUP (a renewed file
under the same name takes effect); a certificate that does not load keeps
the running configuration whole."""

import os
import shutil
import signal
import ssl
import tempfile

from conftest import make_certs, wait_until


def served_cert(port):
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return ssl.PEM_cert_to_DER_cert(pem)


def file_cert(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_sighup_rereads_renewed_tls_files_and_a_bad_pair_keeps_the_old(db, collectors):
    d = tempfile.mkdtemp(prefix="vgc-tls-")
    certs = make_certs(d)
    cert, key = os.path.join(d, "live.pem"), os.path.join(d, "live.key")
    shutil.copy(certs["good.pem"], cert)
    shutil.copy(certs["good.key"], key)
    c = collectors(db, scheme="https",
                   config_text=f"tls_cert_file = {cert}\ntls_key_file = {key}\n")
    assert served_cert(c.port) == file_cert(certs["good.pem"])

    # A key that does not match: the check hook refuses, nothing changes.
    with open(c.config_path, "w") as f:
        f.write(f"tls_cert_file = {cert}\ntls_key_file = {certs['wrong.key']}\n")
    c.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in c.output(), 10, "the reload refused")
    assert "running configuration: tls_key_file" in c.output(), c.output()[-2000:]
    assert served_cert(c.port) == file_cert(certs["good.pem"])

    # Renewed files under the same names, the config text unchanged: SIGHUP
    # re-reads them.
    with open(c.config_path, "w") as f:
        f.write(f"tls_cert_file = {cert}\ntls_key_file = {key}\n")
    shutil.copy(certs["wrong.pem"], cert)
    shutil.copy(certs["wrong.key"], key)
    c.signal(signal.SIGHUP)
    wait_until(lambda: served_cert(c.port) == file_cert(certs["wrong.pem"]), 10,
               "the renewed certificate served")
    shutil.rmtree(d, ignore_errors=True)
