"""The docs site builds in strict mode, and the README stays a product page.

`mkdocs build --strict` fails on a broken link or anchor, a page missing
from the nav, a missing benchmark plot or a docstring that mkdocstrings
cannot render, so this test is what keeps `docs/` and the API reference
whole. mkdocstrings renders a member without a docstring silently, so a
second test walks what the reference pages show and asks each for one.
"""

import importlib
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 300
# The README opens with these lines, exactly: the title, then the two
# commands a reader runs first.
README_START = [
    "# kd_keras",
    "",
    "```bash",
    "make demo   # creates .venv, installs kd_keras, distils MiniLM on movie reviews with "
    "the default recipe, exports + verifies, prints the results (about 20 minutes on 2 cores)",
    "make test   # creates .venv, installs kd_keras with its test tools, runs the test suite",
    "```",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built with `mkdocs build --strict`, as a user would."""
    site_dir = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    problems = [line for line in result.stderr.splitlines()
                if line.startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0, "\n".join(problems) or result.stderr[-4000:]
    return site_dir


def test_mkdocs_build_strict_passes(site):
    for page in ("index.html", "guides/distiller/index.html", "reference/distiller/index.html",
                 "results/index.html", "results/images/frontier.png"):
        assert (site / page).is_file(), page
    reference = (site / "reference/distiller/index.html").read_text(encoding="utf-8")
    # The API reference is generated from the docstrings, not written by hand.
    assert 'id="kd_keras.distillation.distiller.Distiller.compile"' in reference


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"
    assert lines[:len(README_START)] == README_START


def _page(link):
    """The built page of a README link into docs/ (`docs/guides/cli.md`)."""
    relative = pathlib.PurePosixPath(link).relative_to("docs").with_suffix("")
    if relative.name == "index":
        return relative.parent / "index.html"
    return relative / "index.html"


def test_readme_links_resolve(site):
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if "://" in link or link.startswith("#"):
            continue
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), f"README.md links to a missing {path}"
        if anchor and path.startswith("docs/") and path.endswith(".md"):
            html = (site / _page(path)).read_text(encoding="utf-8")
            assert f'id="{anchor}"' in html, f"README.md links to a missing anchor {link}"


PIPELINE_TIME = ROOT / "benchmarks" / "results" / "pipeline_time.json"


def _demo_run():
    """The run the docs quote: `--docs` (`docs_run`), else the `after` run."""
    with open(PIPELINE_TIME, encoding="utf-8") as f:
        payload = json.load(f)
    return payload["runs"][payload.get("docs_run", "after")]


def test_the_docs_demo_table_is_what_the_shipped_demo_printed():
    """The demo table on the results page is the table of the latest
    measured `make demo` run (`benchmarks/pipeline_time.py --docs`),
    character for character, and the README's demo row quotes its
    accuracies and its wall time."""
    run = _demo_run()
    page = (ROOT / "docs" / "results" / "index.md").read_text(encoding="utf-8")
    section = page.split("## The demo (`make demo`)", 1)[1]
    table = section.split("```\n", 2)[1].rstrip("\n")
    assert table == run["table"] + "\n" + run["time_line"]
    readme = README.read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| [`make demo`]"))
    for key in ("teacher", "student", "student_without_distillation"):
        assert f"{100 * run['accuracy'][key]:.2f}%" in row, key
    minutes, seconds = divmod(round(run["wall_seconds"]), 60)
    assert f"{minutes} min {seconds} s" in row


def _reference_filters():
    """The member-name filters of mkdocs.yml's mkdocstrings handler."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    (line,) = [line for line in text.splitlines() if line.strip().startswith("filters:")]
    return [re.compile(f[1:]) for f in yaml.safe_load(line.strip())["filters"]]


def _shown(name, filters):
    return not any(f.search(name) for f in filters)


def _resolve(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def _members(obj, filters):
    """(name, object) of what mkdocstrings shows under `obj`: a module's
    public functions and classes (its `__all__`, or those it defines), a
    class's own methods and properties."""
    if inspect.ismodule(obj):
        names = getattr(obj, "__all__", None)
        for name in names or vars(obj):
            member = getattr(obj, name)
            if not _shown(name, filters) or not (inspect.isfunction(member)
                                                 or inspect.isclass(member)):
                continue
            if names is None and member.__module__ != obj.__name__:
                continue
            yield f"{obj.__name__}.{name}", member
            yield from _members(member, filters)
    elif inspect.isclass(obj):
        for name, member in vars(obj).items():
            function = member.fget if isinstance(member, property) else getattr(
                member, "__func__", member)
            if _shown(name, filters) and inspect.isfunction(function):
                yield f"{obj.__module__}.{obj.__qualname__}.{name}", function


def test_every_member_the_reference_shows_has_a_docstring():
    filters = _reference_filters()
    assert not _shown("_private", filters) and not _shown("get_config", filters)
    missing, seen = [], 0
    for page in sorted((ROOT / "docs" / "reference").glob("*.md")):
        for dotted in re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), re.M):
            obj = _resolve(dotted)
            for name, member in [(dotted, obj), *_members(obj, filters)]:
                seen += 1
                if not (member.__doc__ or "").strip():
                    missing.append(f"{page.name}: {name}")
    assert seen > 100, seen  # the walk reaches the members, not just the pages
    assert not missing, "no docstring:\n" + "\n".join(missing)
