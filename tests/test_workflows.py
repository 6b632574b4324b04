"""The GitHub workflows parse and run the right commands (they cannot run here).

ci.yml runs `.ci/run` against real PostgreSQL and MariaDB inside CI's 90
minutes; release.yml builds once, checks, tests that very wheel in fresh
virtualenvs and publishes it with trusted publishing on a version tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def load(name: str) -> Dict[str, Any]:
    # In a function: a module-level skip would count as a skipped race test
    # in tests/test_unpatched_proof.py's run of the whole folder.
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def runs(job: Dict[str, Any]) -> List[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def uses(job: Dict[str, Any]) -> List[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_every_workflow_parses():
    names = sorted(path.name for path in WORKFLOWS.glob("*.yml"))
    assert {"ci.yml", "release.yml"} <= set(names)
    for name in names:
        assert load(name)["jobs"], name


def test_ci_runs_the_readme_test_command_with_its_databases():
    (job,) = load("ci.yml")["jobs"].values()
    assert runs(job) == [".ci/run"]
    assert job["timeout-minutes"] <= 90
    assert {"postgres", "mariadb"} <= set(job["services"])
    assert job["env"]["ADK_BACKPORT_POSTGRES_URL"].startswith("postgresql://")
    assert job["env"]["ADK_BACKPORT_MYSQL_URL"].startswith("mysql://")


def test_ci_runs_twine_check_through_tox():
    """`.ci/run` runs every env of env_list; the package env runs twine check."""
    tox_ini = (WORKFLOWS.parents[1] / "tox.ini").read_text()
    env_list = tox_ini.split("env_list =", 1)[1].split("\n[", 1)[0]
    assert "package" in [env.strip() for env in env_list.replace("\n", ",").split(",")]
    package_env = tox_ini.split("[testenv:package]", 1)[1].split("\n[", 1)[0]
    assert "twine check --strict" in package_env


def test_release_builds_once_and_publishes_what_it_tested():
    workflow = load("release.yml")
    assert workflow["on"] == {"push": {"tags": ["v*"]}}
    jobs = workflow["jobs"]
    built = [
        name for name, job in jobs.items() if any("-m build" in r for r in runs(job))
    ]
    assert built == ["build"]
    build = jobs["build"]
    assert any("twine check --strict dist/*" in r for r in runs(build))
    assert "actions/upload-artifact" in uses(build)
    # the tag, pyproject.toml's version and CHANGELOG.md agree; no placeholder URL
    checks = "\n".join(runs(build))
    assert "GITHUB_REF_NAME" in checks and "CHANGELOG.md" in checks
    assert "OWNER" in checks

    test = jobs["test-wheel"]
    assert test["needs"] == "build"
    assert "actions/download-artifact" in uses(test)
    commands = "\n".join(runs(test))
    assert "python -m venv /tmp/fresh" in commands
    assert 'pip install "$wheel"' in commands
    assert "diff /tmp/before.txt /tmp/after.txt" in commands  # no version moved
    assert "-m adk_compaction_backport doctor" in commands
    assert "-m adk_compaction_backport verify" in commands
    pythons = {cell["python"] for cell in test["strategy"]["matrix"]["include"]}
    assert pythons == {"3.9", "3.13"}  # the oldest and newest supported

    publish = jobs["publish"]
    assert set(publish["needs"]) == {"build", "test-wheel"}
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"] == "pypi"
    assert uses(publish) == ["actions/download-artifact", "pypa/gh-action-pypi-publish"]
    assert runs(publish) == []  # it publishes the tested files, nothing else
    for step in publish["steps"]:  # trusted publishing: no token, no password
        assert not {"password", "user"} & set(step.get("with", {}))
