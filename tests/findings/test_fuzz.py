"""Mutated reports and results never crash the extractor, and never reach its last-resort guard."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.findings import extract_findings
from tests.findings import fixtures as fx
from tests.mutation import element_paths, replaced

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=16) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


_TEXT_REPORT = fx.source_bone_scan_text_only()
_CODED_REPORT, _CODED_RESOURCES = fx.source_bone_scan_coded()
_OBS = _CODED_RESOURCES["Observation/bs-o2"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["text", "coded", "observation"]), data=st.data(), garbage=_json)
def test_mutations_never_crash(knowledge, now, which, data, garbage) -> None:
    base = {"text": _TEXT_REPORT, "coded": _CODED_REPORT, "observation": _OBS}[which]
    path = data.draw(st.sampled_from(element_paths(base)))
    mutated = replaced(base, path, garbage)
    if which == "observation":
        reports, resources = [_CODED_REPORT], {**_CODED_RESOURCES, "Observation/bs-o2": mutated}
    else:
        reports, resources = [mutated], _CODED_RESOURCES
    fs = extract_findings(reports, resources, now, [("calf", "")], knowledge)
    assert not [w for w in fs.warnings if w.message.startswith("findings not extracted")], fs.warnings
