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
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
TRITON_CONSTRAINTS = ROOT / "docker" / "triton-constraints.txt"
TRTLLM_CONSTRAINTS = ROOT / "docker" / "trtllm-constraints.txt"
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
        constrained = any(
            f"-c /tmp/{name}" in command
            for name in ("constraints.txt", "triton-constraints.txt", "trtllm-constraints.txt")
        )
        wheel_alone = "--no-deps /wheels/visiongate-*.whl" in command
        assert constrained or wheel_alone, command
    wheels = [command for command in installs if "/wheels/visiongate-*.whl" in command]
    assert len(wheels) == 3, "the gateway, triton and triton-trtllm stages install the wheel"


def test_the_triton_stages_pin_what_the_tests_ran_against() -> None:
    # Installed here (torch as its CPU build, "+cpu"): what every other test ran with.
    for constraints in (TRITON_CONSTRAINTS, TRTLLM_CONSTRAINTS):
        ran = {name: version(name).split("+")[0] for name in pins(constraints)}
        assert pins(constraints) == ran, constraints.name


def test_the_trtllm_profile_serves_a_read_only_checkpoint_with_engine_trtllm() -> None:
    services = YAML(typ="safe").load((ROOT / "compose.yaml").read_text())["services"]
    trtllm = services["triton-trtllm"]
    assert trtllm["profiles"] == ["trtllm"] and "profiles" not in services["triton"]
    assert trtllm["environment"]["VISIONGATE_ENGINE"] == "trtllm"
    (volume,) = trtllm["volumes"]
    assert volume.endswith(":/checkpoints/model:ro")
    assert trtllm["environment"]["VISIONGATE_MODEL_PATH"] == "/checkpoints/model"
    # The gateway waits for whichever Triton the profile runs.
    waits = services["gateway"]["depends_on"]
    assert waits["triton"]["required"] is False and waits["triton-trtllm"]["required"] is False
    dockerfile = (ROOT / "Dockerfile").read_text()
    target = trtllm["build"]["target"]
    assert f"FROM ${{TRTLLM_TRITON_IMAGE}} AS {target}" in dockerfile
    (image,) = re.findall(r"^ARG TRTLLM_TRITON_IMAGE=(\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-trtllm-python-py3", image)


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
