"""The project speaks of itself only: no tracker issue numbers and no
absolute paths of the machine it was built on, in any file it ships (code,
tests, docs, configs, notebooks, stored benchmark results)."""

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUFFIXES = (".py", ".md", ".yaml", ".yml", ".ipynb", ".json", ".mjs", ".html", ".toml", ".cfg",
            ".txt", "Makefile")
FORBIDDEN = {
    "an issue number": re.compile(r"\b[Ii]ssues? #?\d+|(?<![\w&#])#\d{2,3}\b(?![\w-])"),
    "a machine path": re.compile(r"(?<![\w.~-])/(?:work|tmp|home|root|Users)/"),
}


def _shipped_files():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the shipped files are those git tracks")
    return [ROOT / name for name in listed.stdout.splitlines()
            if name.endswith(SUFFIXES) and "node_modules" not in name
            and not name.endswith("package-lock.json")]


def test_no_issue_numbers_or_machine_paths():
    found = []
    for path in _shipped_files():
        if not path.is_file() or path == pathlib.Path(__file__).resolve():
            continue  # This file shows the patterns on purpose.
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:80]}")
    assert not found, "\n".join(found[:20])


@pytest.mark.parametrize("line, what", [
    ("# Issue 12, item 8: verify", "an issue number"),
    ("fixed in #31 here", "an issue number"),
    ("--out /tmp/q.json", "a machine path"),
    ('"cache_dir": "/work/main/runs"', "a machine path"),
])
def test_the_patterns_catch_what_they_name(line, what):
    assert FORBIDDEN[what].search(line)


@pytest.mark.parametrize("line", ["color: #fff;", "runs/tmp/x", "/dev/null", "../other/data",
                                  "a ~/work/ folder", "Heading {#anchor}", "&#39;", "€ ##20"])
def test_the_patterns_leave_ordinary_text_alone(line):
    assert not any(p.search(line) for p in FORBIDDEN.values())
