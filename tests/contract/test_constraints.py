"""constraints.txt pins every dependency pyproject.toml names, at a version its range allows: what
a fresh machine, CI and the image install is what the tests passed with."""

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.core.settings import PROJECT_ROOT


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line).groups()  # type: ignore[union-attr]
            found[canonicalize_name(name)] = version
    return found


def test_every_dependency_is_pinned_within_its_range():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pinned = pins()
    missing = [str(r) for r in wanted if canonicalize_name(r.name) not in pinned]
    assert not missing, f"not in constraints.txt: {missing}"
    outside = [f"{r} (pinned {pinned[canonicalize_name(r.name)]})" for r in wanted
               if not r.specifier.contains(pinned[canonicalize_name(r.name)], prereleases=True)]  # fmt: skip
    assert not outside, f"pinned outside pyproject.toml's range: {outside}"


def test_the_installs_use_the_constraints():
    assert "-c constraints.txt" in (PROJECT_ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in (PROJECT_ROOT / "Dockerfile").read_text()
