"""The container image's command starts the service from an installed wheel.

No Docker engine runs here, so the test does what the image does: build the
project's wheel, install it outside the source tree, lay out the files the
Dockerfile copies (and only those) in a temporary root, and run the
Dockerfile's CMD with the Dockerfile's environment, ``/app`` moved under that
root (host and port moved to a free loopback port) until ``/readyz`` answers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.serving import free_port, loopback_client, wait_until_healthy

pytestmark = pytest.mark.slow

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


def image_layout(root: Path) -> tuple[dict[str, str], Path]:
    """The final stage's files under ``root`` as the image has them under ``/``: the paths it COPYs
    from the build context, the folders its RUN lines create; and its ENV with ``/app`` moved under
    ``root``. Returns (env, working directory)."""
    stage = final_stage()
    for keyword, value in stage:
        if keyword == "COPY" and not value.startswith("--from"):
            source, destination = shlex.split(value)
            target = root / destination.lstrip("/")
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / source, target)
        elif keyword == "RUN":
            for folder in re.findall(r"mkdir -p (\S+)", value):
                (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    env_pairs = " ".join(v for k, v in stage if k == "ENV")
    moved = re.sub(r"(?<![\w.])/app\b", f"{root}/app", env_pairs)
    workdir = next(v for k, v in reversed(stage) if k == "WORKDIR")
    return dict(pair.split("=", 1) for pair in shlex.split(moved)), root / workdir.lstrip("/")


def test_the_image_layout_starts_and_is_ready(tmp_path):
    """Issue 16 item 10: the image lacked fhir_examples, so its rules were refused and workers respawned."""
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
    image_env, workdir = image_layout(tmp_path / "image")
    assert image_env["CDS_RULES_DIR"] == str(tmp_path / "image" / "app" / "rules")
    cmd = json.loads(next(v for k, v in final_stage() if k == "CMD"))
    port = free_port()
    env = {
        **os.environ,
        **image_env,
        "PYTHONPATH": str(site),
        "PATH": f"{site / 'bin'}{os.pathsep}{os.environ['PATH']}",
        # Only what a test must change: a free loopback port, and the demo profile instead of the
        # production secrets (JWT clients, HMAC key) an operator supplies.
        "CDS_HOST": "127.0.0.1",
        "CDS_PORT": str(port),
        "CDS_PROFILE": "demo",
        "CDS_AUTH_REQUIRED": "false",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    where = subprocess.run(
        [sys.executable, "-c", "import cds; print(cds.__file__)"], env=env, cwd=workdir, capture_output=True, text=True
    )
    assert where.stdout.startswith(str(site)), "the installed wheel, not the source tree, must be imported"

    log_path = tmp_path / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, log_path)
        with loopback_client(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 60
            while (ready := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready.status_code == 200, ready.text
            services = client.get("/cds-services").json()["services"]
        assert services
        assert b"E028" not in log_path.read_bytes()
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0, "graceful shutdown on SIGTERM"


def test_make_check_dockerfile_runs_in_ci():
    ci = (REPO / ".ci" / "run").read_text()
    assert "make check-dockerfile" in ci
