"""docker/Dockerfile, read statically (no Docker daemon on the machines the tests run on)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, out = "", []
    for line in (ROOT / "docker/Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") and not joined:
            continue
        joined += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if joined.strip():
                keyword, _, rest = joined.strip().partition(" ")
                out.append((keyword.upper(), rest))
            joined = ""
    return out


def test_cuda_runtime_base_python_311_and_a_non_root_user():
    steps = instructions()
    assert steps[0][0] == "FROM" and "nvidia/cuda" in steps[0][1] and "runtime" in steps[0][1]
    assert any(k == "RUN" and "python3.11" in a for k, a in steps)
    users = [a.strip() for k, a in steps if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    first_user = next(i for i, (k, _) in enumerate(steps) if k == "USER")
    installs = [i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a]
    assert installs and min(installs) > first_user  # packages belong to the runtime user's venv


def test_the_project_and_its_configs_are_installed():
    steps = instructions()
    copied = " ".join(a for k, a in steps if k == "COPY")
    for folder in ("ferkit", "steps", "pipelines", "configs"):
        assert f" {folder} ./{folder}" in copied
    assert any(k == "RUN" and "pip install --no-deps -e ." in a for k, a in steps)


def test_data_and_local_state_never_enter_the_build_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"*.zip", ".ferkit", ".venv", ".zen"} <= ignored
