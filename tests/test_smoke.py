from fastapi.testclient import TestClient

from cds.app import create_app
from cds.settings import Settings
from tests.conftest import RULES_DIR


def test_discovery_lists_the_bundled_services():
    client = TestClient(create_app(Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR)))
    services = client.get("/cds-services").json()["services"]
    assert {s["hook"] for s in services} >= {"patient-view", "order-select", "order-sign"}
