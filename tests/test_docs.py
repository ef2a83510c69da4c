"""The docs a newcomer reads: README.md stays a short front door (at most 300
lines), and every relative link, backticked repo path, `make` target and
`vgcollector` command named in README.md, HACKING.md and docs/*.md exists."""

import fnmatch
import glob
import os
import re
import subprocess

import pytest

from conftest import BUILD, ROOT

README_MAX_LINES = 300
# The repository's top-level entries a backticked path may start with. build/
# and var/ are made by `make` and `make run`, so they are not checked.
TOP = ("collector/", "common/", "sink/", "schema/", "tests/", "deploy/", "docs/")
TOP_FILES = {"Makefile", "README.md", "HACKING.md", ".clang-format", ".gitignore"}


def doc_files():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "HACKING.md")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return [f for f in files if os.path.exists(f)]


def rel(path):
    return os.path.relpath(path, ROOT)


def exists_in_repo(path):
    path = path.rstrip("/")
    if any(c in path for c in "*?["):
        return bool(glob.glob(os.path.join(ROOT, path)))
    return os.path.exists(os.path.join(ROOT, path))


def repo_basenames():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    names = {os.path.basename(p) for p in out.stdout.split()}
    # Files not yet committed count too (a fresh clone has only committed ones).
    for d in ("collector", "common", "sink", "schema", "tests", "deploy", "docs"):
        for dirpath, _, fnames in os.walk(os.path.join(ROOT, d)):
            names.update(fnames)
    return names


def anchors(path):
    """The anchors GitHub gives a Markdown file's headings."""
    with open(path) as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    seen, out = {}, set()
    for title in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def backticked(text):
    """Inline code spans, outside fenced blocks."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", text)


def code_lines(text):
    """Lines of fenced code blocks and inline code spans: where commands are."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    return [line for b in blocks for line in b.splitlines()] + backticked(text)


def test_readme_is_at_most_300_lines():
    with open(os.path.join(ROOT, "README.md")) as f:
        n = len(f.read().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move reference text to docs/"


def test_hacking_md_exists():
    assert os.path.exists(os.path.join(ROOT, "HACKING.md"))


def test_every_docs_file_is_linked_from_the_readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for path in doc_files()[1:]:
        assert f"({rel(path)})" in readme, f"README.md does not link {rel(path)}"


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_relative_links_exist(path):
    with open(path) as f:
        text = f.read()
    base = os.path.dirname(path)
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = os.path.join(base, file) if file else path
        if not os.path.exists(dest):
            missing.append(target)
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            missing.append(target)
    assert missing == [], f"{rel(path)} links to missing files or headings: {missing}"


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_backticked_repo_paths_exist(path):
    with open(path) as f:
        text = f.read()
    names = repo_basenames()
    missing = []
    for span in backticked(text):
        for word in span.split():
            word = word.strip(".,;:()'\"").split("::")[0]
            if "<" in word or "NNNN" in word:
                continue  # a template: schema/NNNN_<what>.sql
            if word.startswith(TOP) or word in TOP_FILES:
                if not exists_in_repo(word):
                    missing.append(word)
            elif re.fullmatch(r"[\w.-]+\.(c|h|py|sql|sh|js|css|html)", word):
                if word not in names and not exists_in_repo(word):
                    missing.append(word)
    assert missing == [], f"{rel(path)} names paths that do not exist: {missing}"


def make_targets():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return set(re.findall(r"^([a-z][\w-]*):", f.read(), flags=re.M))


def vgcollector_commands():
    out = subprocess.run([f"{BUILD}/vgcollector", "--help"], capture_output=True, text=True)
    return set(re.findall(r"^  ([a-z][\w-]*)  ", out.stdout, flags=re.M))


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_named_make_targets_and_commands_exist(path):
    with open(path) as f:
        text = f.read()
    targets, commands = make_targets(), vgcollector_commands()
    assert "serve" in commands and "all" in targets
    missing = []
    for line in code_lines(text):
        for t in re.findall(r"(?:^|[\s(;&|])make ([a-z][\w*-]*)", line):
            if not fnmatch.filter(targets, t):
                missing.append(f"make {t}")
        for c in re.findall(r"(?:^|[\s/(;&|$])vgcollector ([a-z][\w-]*)", line):
            if c not in commands:
                missing.append(f"vgcollector {c}")
    assert missing == [], f"{rel(path)} names commands that do not exist: {missing}"


def test_every_config_key_is_in_operations_md():
    out = subprocess.run([f"{BUILD}/vgcollector", "config-sample"], capture_output=True,
                         text=True, check=True).stdout
    keys = re.findall(r"^#([a-z_]+) =", out, flags=re.M)
    assert len(keys) > 40, out
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        text = f.read()
    assert [k for k in keys if f"| `{k}` |" not in text] == []


def test_every_route_is_in_api_md():
    """Every path in collector/server.c's route table has a row in api.md's table."""
    with open(os.path.join(ROOT, "collector", "server.c")) as f:
        paths = set(re.findall(r'"(/(?:v1/[\w/*-]*|healthz|readyz|metrics|ui/\*)?)"', f.read()))
    assert {"/v1/ingest", "/v1/rollups", "/healthz"} <= paths, paths
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        table = "\n".join(line for line in f.read().splitlines() if line.startswith("| `"))
    want = {p.replace("*", "") for p in paths}
    assert [p for p in sorted(want) if f" {p}" not in table] == []
