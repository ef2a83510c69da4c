#!/usr/bin/env python3
"""The whole suite, as `make test` runs it: unit tests and the integration
suite against the normal build, the same again against the ASan+UBSan build,
then the libFuzzer targets for a fixed time split between them. Ends with
"N passed, N failed". A skipped test counts as failed unless its reason is on
SKIP_ALLOWED."""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_unit(build):
    print(f"== unit tests ({build})", flush=True)
    r = subprocess.run([os.path.join(ROOT, build, "unit_tests")], capture_output=True, text=True,
                       cwd=ROOT)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    if not m:
        return 0, 1
    passed, failed = int(m.group(1)), int(m.group(2))
    if r.returncode != 0 and failed == 0:
        failed = 1
    return passed, failed


# The only skips `make test` accepts: a limit of the machine that no test can
# lift. Any other skip counts as a failure, so a test cannot pass by checking
# nothing (for example an endpoint missing from the build).
SKIP_ALLOWED = [
    # test_ops.py's many-connections test needs more descriptors than the hard
    # RLIMIT_NOFILE of some containers allows, and only root can raise it.
    re.compile(r"RLIMIT_NOFILE hard limit \d+ < \d+"),
]


def skips_not_allowed(suite):
    """The skipped test cases of a junit suite whose reason is not allowed,
    as "file::name: reason"."""
    out = []
    for case in suite.iter("testcase"):
        for sk in case.findall("skipped"):
            reason = sk.get("message", "") or (sk.text or "")
            if not any(a.search(reason) for a in SKIP_ALLOWED):
                out.append(f"{case.get('classname')}::{case.get('name')}: {reason}")
    return out


# Run by `make test-ha` and `make test-scale` only: losing a Patroni leader
# takes 65 to 90 s per build, most of it Patroni's lease running out, and
# twice that would stretch the suite past its budget (docs/operations.md).
NOT_IN_SUITE = ["tests/test_ha.py"]


def start_pytest(build, extra, ports):
    """Starts one build's integration suite in the background, its output
    going to a file; finish_pytest waits for it and counts."""
    xml = tempfile.NamedTemporaryFile(suffix=".xml", delete=False).name
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False)
    env = dict(os.environ, VGC_BUILD=build, VGC_PORT_RANGE=ports)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"--junitxml={xml}", *[f"--ignore={p}" for p in NOT_IN_SUITE],
                             "tests", *extra], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    return build, proc, xml, log


def finish_pytest(started):
    build, proc, xml, log = started
    returncode = proc.wait()
    print(f"== integration tests ({build})", flush=True)
    log.seek(0)
    sys.stdout.write(log.read().decode(errors="replace"))
    sys.stdout.flush()
    log.close()
    os.unlink(log.name)
    try:
        suite = ET.parse(xml).getroot()
        if suite.tag == "testsuites":
            suite = suite[0]
        total = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        refused = skips_not_allowed(suite)
    except (ET.ParseError, FileNotFoundError, IndexError):
        return 0, 1
    finally:
        if os.path.exists(xml):
            os.unlink(xml)
    for line in refused:
        print(f"SKIPPED, and not on run.py's SKIP_ALLOWED (counted as failed): {line}",
              flush=True)
    if returncode not in (0, 1) and bad == 0:
        bad = 1
    return total - bad - skipped, bad + len(refused)


# Each libFuzzer target with its seed corpus; the fuzzing time is split
# between them.
FUZZ_TARGETS = (("fuzz_ingest", "corpus"), ("fuzz_otlp", "corpus_otlp"))


def run_fuzz(build, seconds):
    passed = failed = 0
    share = max(1, seconds // len(FUZZ_TARGETS))
    for target, seed_dir in FUZZ_TARGETS:
        print(f"== fuzzing {target} for {share} s", flush=True)
        corpus = tempfile.mkdtemp(prefix="vgc-fuzz-")
        seeds = os.path.join(ROOT, "tests", "fuzz", seed_dir)
        dirs = [corpus] + ([seeds] if os.path.isdir(seeds) else [])
        r = subprocess.run([os.path.join(ROOT, build, target), f"-max_total_time={share}",
                            "-rss_limit_mb=1024", "-print_final_stats=1", *dirs],
                           cwd=ROOT, capture_output=True, text=True)
        tail = "\n".join(r.stderr.splitlines()[-12:])
        print(tail)
        if r.returncode == 0:
            passed += 1
        else:
            failed += 1
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fuzz-seconds", type=int, default=30)
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    passed = failed = 0
    for step in (lambda: run_unit("build"), lambda: run_unit("build/san")):
        p, f = step()
        passed += p
        failed += f
    # The two builds' integration suites run side by side: most of a test's
    # time is waiting on PostgreSQL, a collector or a timer, not on the CPU.
    # Each has its own half of the test port range; their outputs are printed
    # in turn as each ends.
    started = [start_pytest("build", args.pytest_args, "20000-26384"),
               start_pytest("build/san", args.pytest_args, "26384-32768")]
    for s in started:
        p, f = finish_pytest(s)
        passed += p
        failed += f
    p, f = run_fuzz("build", args.fuzz_seconds)
    passed += p
    failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
