"""The container image's command starts the service from an installed wheel.

No Docker engine runs here, so the test does what the image does: build the
project's wheel, install it outside the source tree, and run the Dockerfile's
CMD with the Dockerfile's environment (host and port moved to a free loopback
port, rules pointed at the repository's).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib

import httpx

from tests.conftest import REPO, RULES_DIR
from tests.serving import free_port, wait_until_healthy

DOCKERFILE = (REPO / "Dockerfile").read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_final_stage_runs_unprivileged_with_a_health_check_and_no_compiler():
    stage = final_stage()
    users = [v for k, v in stage if k == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert any(k == "HEALTHCHECK" and "/healthz" in v for k, v in stage)
    assert not any(k == "RUN" and re.search(r"\b(gcc|build-essential)\b", v) for k, v in stage)
    assert any(k == "COPY" and v.endswith("/app/rules") for k, v in stage)


def test_image_installs_the_version_in_pyproject():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert f"calciphylaxis-cds=={version}" in DOCKERFILE



def test_cmd_starts_the_service_from_an_installed_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(REPO)],
        check=True,
        timeout=300,
    )
    site = tmp_path / "site"
    (wheel,) = wheels.glob("calciphylaxis_cds-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    stage = final_stage()
    env_pairs = " ".join(v for k, v in stage if k == "ENV")
    image_env = dict(pair.split("=", 1) for pair in shlex.split(env_pairs))
    cmd = json.loads(next(v for k, v in stage if k == "CMD"))
    port = free_port()
    env = {
        **os.environ,
        **image_env,
        "PYTHONPATH": str(site),
        "PATH": f"{site / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "CDS_HOST": "127.0.0.1",
        "CDS_PORT": str(port),
        "CDS_RULES_DIR": str(RULES_DIR),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        "CDS_PROFILE": "demo",
        "CDS_AUTH_REQUIRED": "false",
    }
    where = subprocess.run(
        [sys.executable, "-c", "import cds; print(cds.__file__)"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert where.stdout.startswith(str(site)), "the installed wheel, not the source tree, must be imported"

    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, tmp_path / "server.log")
        services = httpx.get(f"http://127.0.0.1:{port}/cds-services", timeout=5).json()["services"]
        assert services
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    assert process.returncode == 0, "graceful shutdown on SIGTERM"
