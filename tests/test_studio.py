"""`cds studio` (issue 17 item 10): the playground page in Debian's Chromium (Playwright). Load a case, edit a
likelihood ratio and see the outcome diff, break a rule and see the error at its line; and the API's guards."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds.studio.app import create_studio_app
from tests.engine.helpers import copy_live_rules

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CASE = "case-ddx-necrotizing-soft-tissue-infection"


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    return copy_live_rules(tmp_path_factory.mktemp("studio"))


@pytest.fixture(scope="module")
def client(rules):
    return TestClient(create_studio_app(rules), base_url="http://127.0.0.1")


def test_the_studio_refuses_other_hosts(client):
    assert client.get("/api/state", headers={"host": "evil.example:8765"}).status_code == 403
    assert client.get("/api/state").status_code == 200


def test_bad_input_is_a_clear_400_never_a_500(client):
    assert client.post("/api/evaluate", json={"case": "no-such-case"}).status_code == 400
    response = client.post("/api/evaluate", json={"request": "{not json"})
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    assert client.get("/api/file", params={"path": "../../etc/passwd"}).status_code == 400
    assert client.post("/api/try", json={"case": CASE, "files": {"../outside.yaml": "x: 1"}}).status_code == 400


def test_an_edit_with_a_non_finite_ratio_is_refused_as_a_reload_would_refuse_it(client, rules):
    text = (rules / "rules" / "risk-factors.yaml").read_text()
    broken = re.sub(r"likelihood_ratio: [0-9.]+", "likelihood_ratio: .nan", text, count=1)
    result = client.post("/api/try", json={"case": CASE, "files": {"rules/risk-factors.yaml": broken}}).json()
    assert not result["valid"] and result["reload"].startswith("refused")
    assert any(d["code"] == "E016" and d["file"] == "rules/rules/risk-factors.yaml" for d in result["diagnostics"])


def test_the_production_profile_refuses_the_studio(monkeypatch, capsys):
    from cds.cli import main

    monkeypatch.setenv("CDS_PROFILE", "production")
    assert main(["studio"]) == 1
    assert "refused in the production profile" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the page in Chromium
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(rules):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_studio_app(rules), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(served):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing in CI (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(served + "/")
        yield page
        browser.close()


@pytest.mark.slow
def test_load_a_case_edit_a_likelihood_ratio_see_the_diff_break_a_rule_see_the_line(page, rules):
    # 1. load a shipped case: facts, rules with why, differential and cards appear
    page.wait_for_function("document.querySelectorAll('#case option').length > 0")
    page.select_option("#case", CASE)
    page.click("#run")
    page.wait_for_function("document.querySelectorAll('#facts tbody tr').length > 0")
    assert page.locator("#differential tbody tr").count() > 3
    assert page.locator("#rules [data-rule]").count() > 10
    silent = page.locator("#rules tbody tr", has=page.locator(".silent")).first.inner_text()
    assert "did not fire" in silent
    assert page.locator("#card-checks [data-card]").count() > 0

    # 2. edit a likelihood ratio: pain out of proportion weighs 2 for calciphylaxis; as 8, the
    #    necrotising-infection look-alike crosses the card threshold (a false-positive card)
    page.select_option("#file", "rules/lesions.yaml")
    page.click("#load-file")
    page.wait_for_function("document.getElementById('editor').value.length > 100")
    original = page.input_value("#editor")
    start = original.index("- id: lesion-pain-out-of-proportion")
    ratio = re.compile(r"(hypothesis: calciphylaxis, likelihood_ratio: )([0-9.]+)")
    match = ratio.search(original, start)
    assert match and float(match.group(2)) < 8
    page.fill("#editor", original[: match.start(2)] + "8.0" + original[match.end(2) :])
    page.click("#try")
    page.wait_for_selector("#diff-summary")
    assert "1 of 1 case(s) change" in page.inner_text("#diff-summary")
    assert "lesion-pain-out-of-proportion" in page.inner_text("#diff-summary")
    change = page.inner_text(f"[data-case='{CASE}']")
    assert "cause calciphylaxis" in change and "lesion-pain-out-of-proportion" in change
    # The safety gate (issue 12) keeps the elective risk card away while the necrotising infection is
    # time-critical: the edit shows as a changed card, never as a new calciphylaxis risk card.
    assert "card changed time-critical-condition" in change
    assert "card added calciphylaxis-risk" not in change

    # 3. break a rule (one space short) and see the error at its line
    lines = original.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("    title:"))
    lines[index] = "   " + lines[index].lstrip(" ")
    page.fill("#editor", "\n".join(lines))
    page.click("#try")
    page.wait_for_selector("#diagnostics li.error")
    first = page.locator("#diagnostics li.error").first
    assert first.get_attribute("data-file") == "rules/rules/lesions.yaml"
    assert int(first.get_attribute("data-line")) in (index, index + 1, index + 2)
    assert "E001" in first.inner_text()
    assert page.inner_text("#reload-verdict").startswith("Reload: refused")
