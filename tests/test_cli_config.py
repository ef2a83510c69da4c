"""Every subcommand loads its configuration one way (file, then VGC_*
environment, then flags) and has a --help generated from its table; config
bounds are refused with the key, file and line. Over the real binary."""

import os
import subprocess
import tempfile

import pytest

from conftest import VGC, run_vgc, sanitizer_env

# Every command that reads configuration, with a run that needs only the database.
DB_COMMANDS = [
    ["migrate"],
    ["keys", "list"],
    ["rollup", "--from", "2024-05-01", "--to", "2024-05-02"],
    ["retention", "--dry-run"],
]


def vgc_clean_env(*args, env=None):
    """Runs vgcollector with no VGC_* variable and libpq defaults that reach no
    server, so only the config file can name the database."""
    e = {k: v for k, v in sanitizer_env().items() if not k.startswith(("VGC_", "PG"))}
    e.update({"PGHOST": "/nonexistent-vgc", "PGDATABASE": "nonexistent"})
    if env:
        e.update(env)
    return subprocess.run([VGC, *args], capture_output=True, text=True, env=e, timeout=60)


def conf(text):
    d = tempfile.mkdtemp(prefix="vgc-cli-")
    path = os.path.join(d, "vgcollector.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: a[0])
def test_command_takes_db_from_config_file(db, args):
    good = conf(f'db = "{db.conninfo}"\n')
    r = vgc_clean_env(*args, "--config", good)
    assert r.returncode == 0, r.stderr
    r = vgc_clean_env(*args, env={"VGC_CONFIG": good})
    assert r.returncode == 0, r.stderr
    # The file is what named the database: a file naming none fails.
    bad = conf('db = "host=/nonexistent-vgc dbname=x"\n')
    r = vgc_clean_env(*args, "--config", bad)
    assert r.returncode == 1 and "cannot connect to PostgreSQL" in r.stderr, r.stderr
    # Then the environment, then the flag.
    r = vgc_clean_env(*args, "--config", bad, env={"VGC_DB": db.conninfo})
    assert r.returncode == 0, r.stderr
    r = vgc_clean_env(*args, "--config", bad, "--db", db.conninfo,
                      env={"VGC_DB": "host=/nonexistent-vgc dbname=y"})
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: a[0])
def test_command_takes_db_file_from_config_file(db, args):
    d = tempfile.mkdtemp(prefix="vgc-cli-")
    secret = os.path.join(d, "db")
    with open(secret, "w") as f:
        f.write(db.conninfo + "\n")
    path = conf(f'db = "host=/nonexistent-vgc dbname=x"\ndb_file = {secret}\n')
    r = vgc_clean_env(*args, "--config", path)
    assert r.returncode == 0, r.stderr


def test_keys_round_trip_with_config_file_only(db):
    path = conf(f'db = "{db.conninfo}"\n')
    r = vgc_clean_env("keys", "create", "--role", "read", "--name", "fromconf", "--config", path)
    assert r.returncode == 0, r.stderr
    key = r.stdout.splitlines()[0]
    r = vgc_clean_env("keys", "list", "--config", path)
    assert r.returncode == 0 and key[:12] in r.stdout and "fromconf" in r.stdout, r.stderr
    r = vgc_clean_env("keys", "revoke", key[:12], "--config", path)
    assert r.returncode == 0 and r.stdout.startswith("revoked key id="), r.stderr


@pytest.mark.parametrize("args", [["serve"], ["migrate"], ["keys", "create"], ["keys", "list"],
                                  ["keys", "revoke"], ["rollup"], ["retention"],
                                  ["config-sample"]], ids=" ".join)
def test_every_command_help_is_generated(args):
    r = run_vgc(*args, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: vgcollector {' '.join(args)}"), r.stdout
    if args != ["config-sample"]:
        assert "\nOptions:\n" in r.stdout and "  --config FILE " in r.stdout, r.stdout
        assert "VGC_<KEY> environment variables" in r.stdout, r.stdout
    if args != ["config-sample"] and args != ["serve"]:
        assert "  --db TEXT " in r.stdout and "  --pool-size " not in r.stdout, r.stdout
    if args == ["serve"]:
        assert "  --pool-size N " in r.stdout and "1..256" in r.stdout, r.stdout


@pytest.mark.parametrize("text,line,reason", [
    ("\npool_size = 300\n", 2, 'pool_size = "300": must be 1..256'),
    ("max_body_bytes = 100\n", 1, 'max_body_bytes = "100": must be at least 1024'),
    ("# c\n\nmax_element_values = 10\n", 3, 'max_element_values = "10": must be at least 64'),
    ("key_refresh_s = 0\n", 1, 'key_refresh_s = "0": must be at least 1'),
])
def test_out_of_range_value_names_key_file_and_line(text, line, reason):
    path = conf(text)
    for args in (["serve"], ["retention", "--dry-run"], ["migrate"]):
        r = vgc_clean_env(*args, "--config", path)
        assert r.returncode != 0, args
        assert f"{path}:{line}: {reason}" in r.stderr, (args, r.stderr)
