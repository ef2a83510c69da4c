"""The Patroni recipe's files as shipped, checked in `make test` (running
them is `make test-ha`'s work, tests/test_ha.py): deploy/ha/patroni.yml passes
Patroni's own validation and keeps a synchronous standby with a lease short
enough for a ~10 s failover; deploy/ha/haproxy.cfg passes `haproxy -c` and
tells the leader from a standby by Patroni's REST checks."""

import os
import re
import subprocess
import sys

import yaml

from conftest import ROOT

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ha"))
from ha_parts import HAPROXY, HAPROXY_CFG, PATRONI, PATRONI_YML  # noqa: E402


def test_patroni_yml_validates_and_keeps_a_synchronous_standby():
    r = subprocess.run([PATRONI, "--validate-config", PATRONI_YML], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(PATRONI_YML) as f:
        dcs = yaml.safe_load(f)["bootstrap"]["dcs"]
    # Without it a failover can promote a standby lacking acknowledged rows.
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["parameters"]["synchronous_commit"] in ("on", "remote_apply")
    # Patroni's own rule, and the lease the docs' failover figures assume.
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"] <= 10, dcs
    assert dcs["postgresql"]["use_pg_rewind"] is True


def test_haproxy_cfg_checks_patroni_primary_and_replica():
    r = subprocess.run([HAPROXY, "-c", "-f", HAPROXY_CFG], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(HAPROXY_CFG) as f:
        text = f.read()
    sections = dict(re.findall(r"^listen (\S+)\n((?:[ \t].*\n|\n)*)", text, flags=re.M))
    assert set(sections) == {"vgc_primary", "vgc_replica"}, sections.keys()
    assert "option httpchk GET /primary" in sections["vgc_primary"]
    assert "option httpchk GET /replica" in sections["vgc_replica"]
    for body in sections.values():
        assert "on-marked-down shutdown-sessions" in body
        assert re.search(r"server \S+ \S+:5432 .*check port 8008", body), body
