"""compose.yaml and the Dockerfile, checked offline (no Docker engine here).

compose.yaml is validated against the Compose specification; the Dockerfile's installs are
checked to be the wheel and pinned versions, the ones the tests ran against.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
TRITON_CONSTRAINTS = ROOT / "docker" / "triton-constraints.txt"
# The Python of the Triton image the Dockerfile was written for (tritonserver:24.12-py3).
TRITON_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.3"}


def test_compose_file_validates_against_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def normalised(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """The ``name==version`` lines of a constraints file, by normalised name."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, pinned = line.split("==")
            found[normalised(name)] = pinned.strip()
    return found


def pip_installs() -> list[str]:
    """Every ``pip install`` command of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    commands = [part for line in text.splitlines() for part in line.split("&&")]
    return [" ".join(command.split()) for command in commands if "pip install" in command]


def test_every_pip_install_in_the_dockerfile_is_pinned_or_the_wheel_alone() -> None:
    installs = pip_installs()
    assert installs
    for command in installs:
        constrained = "-c /tmp/constraints.txt" in command or (
            "-c /tmp/triton-constraints.txt" in command
        )
        wheel_alone = "--no-deps /wheels/visiongate-*.whl" in command
        assert constrained or wheel_alone, command
    wheels = [command for command in installs if "/wheels/visiongate-*.whl" in command]
    assert len(wheels) == 2, "the gateway and triton stages both install the built wheel"


def test_the_triton_stage_pins_what_the_tests_ran_against() -> None:
    # Installed here (torch as its CPU build, "+cpu"): what every other test ran with.
    ran = {name: version(name).split("+")[0] for name in pins(TRITON_CONSTRAINTS)}
    assert pins(TRITON_CONSTRAINTS) == ran


def test_the_triton_constraints_cover_everything_the_triton_stage_installs() -> None:
    (command,) = [c for c in pip_installs() if "-c /tmp/triton-constraints.txt" in c]
    words = command.split()
    wanted = words[words.index("-c") + 2 :]
    closure: set[str] = set()
    while wanted:
        name = normalised(wanted.pop())
        if name in closure:
            continue
        closure.add(name)
        for line in requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or marker.evaluate({**TRITON_PYTHON, "extra": ""}):
                wanted.append(requirement.name)
    # torch's CUDA build also needs its nvidia-* libraries and triton: torch pins them itself.
    assert sorted(closure - pins(TRITON_CONSTRAINTS).keys()) == []
