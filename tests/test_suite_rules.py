"""The suite's own rules, which keep a test from passing by checking nothing
or code from leaning on the wrong layer: the unit runner refuses a filter
that matches no test, run.py counts a skip not on its allow-list as failed,
and the layer check refuses an include from a higher layer and an include
cycle."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import BUILD, ROOT

sys.path.insert(0, os.path.join(ROOT, "tests"))
import check_layers  # noqa: E402
import run  # noqa: E402


def test_unit_runner_exits_1_when_its_filter_matches_no_test():
    """It printed "0 passed, 0 failed" and exited 0."""
    r = subprocess.run([os.path.join(BUILD, "unit_tests"), "no_such_name"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "0 passed, 0 failed" in r.stdout
    assert 'no unit test name contains "no_such_name"' in r.stderr
    r = subprocess.run([os.path.join(BUILD, "unit_tests"), "b64url"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and " passed, 0 failed" in r.stdout


def test_run_counts_a_skip_not_on_the_allow_list_as_failed(tmp_path):
    """run.py counted skips as neither passed nor failed, so a test skipped
    because its endpoint was missing ("not merged here") passed silently."""
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n"
        "def test_endpoint_missing():\n"
        "    pytest.skip('this build has no /v1/budgets (not merged here)')\n"
        "def test_machine_limit():\n"
        "    pytest.skip('RLIMIT_NOFILE hard limit 1024 < 4096')\n"
        "def test_real():\n"
        "    assert 1 + 1 == 2\n")
    xml = tmp_path / "out.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={xml}", str(tmp_path / "test_skips.py")], cwd=tmp_path,
                   capture_output=True, check=True)
    suite = ET.parse(xml).getroot()
    suite = suite[0] if suite.tag == "testsuites" else suite
    refused = run.skips_not_allowed(suite)
    assert len(refused) == 1 and "test_endpoint_missing" in refused[0] and \
        "not merged here" in refused[0], refused


def test_layer_check_refuses_an_upward_include_and_an_include_cycle(tmp_path):
    """common/row_fields.c included ../sink/vgsink.h: the shared layer
    depended on the library above it. The tree as it is passes; a copy with
    that include put back, a collector file including a sink header, and
    two common headers including each other fails, naming each."""
    assert check_layers.check(ROOT) == []
    for d in ("common", "collector", "sink"):
        shutil.copytree(os.path.join(ROOT, d), tmp_path / d,
                        ignore=shutil.ignore_patterns("python", "web"))
    with open(tmp_path / "common" / "row_fields.c", "a") as f:
        f.write('#include "../sink/vgsink.h"\n')
    with open(tmp_path / "collector" / "main.c", "a") as f:
        f.write('#include "sink_int.h"\n')
    (tmp_path / "common" / "cyc_a.h").write_text('#include "cyc_b.h"\n')
    (tmp_path / "common" / "cyc_b.h").write_text('#include "cyc_a.h"\n')
    problems = check_layers.check(str(tmp_path))
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "common/row_fields.c" in text and "common/ includes sink/vgsink.h" in text
    assert "collector/main.c" in text and "collector/ includes sink/sink_int.h" in text
    assert "include cycle: common/cyc_a.h -> common/cyc_b.h -> common/cyc_a.h" in text
