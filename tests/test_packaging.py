"""What PyPI users get: metadata, licence, and an sdist holding what docs name.

The built distributions come from ``tox -e package`` (``ADK_BACKPORT_DIST_DIR``),
which also runs ``twine check --strict`` on them; elsewhere the tests that need
them skip and the rest read the repository.
"""

from __future__ import annotations

import email
import itertools
import os
import re
import tarfile
import zipfile
from email.message import Message
from pathlib import Path
from typing import List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [
    "README.md",
    "CONTRIBUTING.md",
    "CHANGELOG.md",
    *(str(p.relative_to(REPO)) for p in sorted((REPO / "docs").glob("*.md"))),
]
SUPPORTED_PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
# A repository path in prose or code: tools/x.py, bench/results/a.{md,json}, docs/
REPO_PATH = re.compile(
    r"(?<![\w/.<>-])((?:src|tests|tools|bench|patches|docs|\.ci|\.github)/[\w./{},-]*)"
)


def dist_dir() -> Path:
    found = os.environ.get("ADK_BACKPORT_DIST_DIR")
    if not found:
        pytest.skip("needs the built distributions: tox -e package")
    return Path(found)


@pytest.fixture(scope="module")
def metadata() -> Message:
    (wheel,) = dist_dir().glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        licences = [n for n in archive.namelist() if ".dist-info/licenses/" in n]
        assert [n.rsplit("/", 1)[1] for n in licences] == ["LICENSE"]
        return email.message_from_bytes(archive.read(name))


@pytest.fixture(scope="module")
def sdist_files() -> Set[str]:
    (sdist,) = dist_dir().glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        return {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}


def expand(path: str) -> List[str]:
    """``a.{md,json}`` -> ``a.md``, ``a.json`` (as a shell would)."""
    parts = re.split(r"\{([^}]*)\}", path)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def test_installing_requires_nothing_that_could_move_a_version(metadata: Message):
    """No google-adk requirement; every other requirement without a bound."""
    required = [
        r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r
    ]
    assert required == ["packaging"]


def test_licence_and_classifiers(metadata: Message):
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().split()[:3] == [
        "Apache",
        "License",
        "Version",
    ]
    classifiers = set(metadata.get_all("Classifier"))
    pythons = {
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert sorted(pythons, key=lambda v: int(v.split(".")[1])) == SUPPORTED_PYTHONS
    assert metadata["Requires-Python"] == ">=3.9"
    # The SQLite lock beside the database file uses fcntl.
    assert "Operating System :: POSIX" in classifiers
    assert not any(c.startswith("Operating System :: Microsoft") for c in classifiers)
    assert any(c.startswith("Development Status ::") for c in classifiers)


def test_project_urls(metadata: Message):
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL"))
    assert set(urls) == {"Source", "Issues", "Changelog", "Upstream-issue"}
    assert urls["Changelog"].endswith("/CHANGELOG.md")


def test_the_sdist_holds_every_path_the_docs_name(sdist_files: Set[str]):
    assert {"LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", "README.md"} <= sdist_files
    missing = []
    for doc in DOCS:
        assert doc in sdist_files
        for named in REPO_PATH.findall((REPO / doc).read_text()):
            for path in expand(named.rstrip("/.,")):
                if not any(f == path or f.startswith(path + "/") for f in sdist_files):
                    missing.append(f"{doc}: {path}")
    assert missing == []


def test_every_supported_python_has_a_tox_env():
    """3.11 is the matrix's default; the others each have an env of their own."""
    tox_ini = (REPO / "tox.ini").read_text()
    assert "base_python = python3.11" in tox_ini
    for version in SUPPORTED_PYTHONS:
        assert f"base_python = python{version}" in tox_ini, version


def test_the_readme_renders_on_pypi():
    """PyPI shows README.md without the repository: no relative images."""
    readme = (REPO / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert [i for i in images if not i.startswith("https://")] == []
