"""FHIR R4 fixtures written for this project: the source case's bone scan and CT, as
text-only reports and as coded reports (result Observations + ImagingStudy).

Built in Python rather than stored as JSON so that the base64 report text stays readable
here; tests check that every resource validates with fhir.resources R4B.
"""

from __future__ import annotations

import base64
from typing import Any

LOCAL = "urn:calciphylaxis-cds:codesystem:imaging-finding"
SCT = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
PATIENT = {"reference": "Patient/example-cua-1"}

SOURCE_BONE_SCAN_TEXT = (
    "EXAMINATION: Whole-body bone scintigraphy with Tc-99m MDP.\n"
    "CLINICAL HISTORY: ESRD on hemodialysis, painful nonhealing ulcers of both calves. "
    "Rule out calciphylaxis.\n"
    "FINDINGS: Diffuse soft-tissue uptake consistent with renal failure, plus asymmetric pronounced "
    "subcutaneous uptake in both calves; faint kidneys; photopenia at the right knee arthroplasty; "
    "degenerative uptake in the midfoot.\n"
)
SOURCE_BONE_SCAN_CONCLUSION = (
    "Asymmetric subcutaneous uptake in both calves on a background of diffuse soft-tissue uptake of "
    "renal failure, compatible with calciphylaxis."
)
SOURCE_CT_TEXT = (
    "EXAMINATION: CT of both lower extremities without contrast.\n"
    "INDICATION: Soft-tissue uptake in both calves on bone scan.\n"
    "FINDINGS: Subcutaneous and cutaneous calcifications in both calves. No fluid collection.\n"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def category() -> list[dict[str, Any]]:
    return [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}]


def report(
    rid: str,
    code: dict[str, Any],
    *,
    text: str | None = None,
    conclusion: str | None = None,
    effective: str = "2026-10-02T09:30:00Z",
    results: list[str] | None = None,
    studies: list[str] | None = None,
    conclusion_codes: list[dict[str, Any]] | None = None,
    version: str | None = "1",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": "final",
        "category": category(),
        "code": code,
        "subject": PATIENT,
        "effectiveDateTime": effective,
        "issued": effective,
    }
    if version:
        out["meta"] = {"versionId": version, "lastUpdated": effective}
    if results:
        out["result"] = [{"reference": r} for r in results]
    if studies:
        out["imagingStudy"] = [{"reference": s} for s in studies]
    if conclusion:
        out["conclusion"] = conclusion
    if conclusion_codes:
        out["conclusionCode"] = [{"coding": [c]} for c in conclusion_codes]
    if text:
        out["presentedForm"] = [{"contentType": "text/plain", "language": "en", "data": b64(text), "title": "Report"}]
    return out


BONE_SCAN_CODE = {
    "coding": [{"system": CPT, "code": "78306", "display": "Bone and/or joint imaging; whole body"}],
    "text": "NM Bone scan whole body",
}
CT_CODE = {
    "coding": [{"system": CPT, "code": "73700", "display": "CT lower extremity without contrast"}],
    "text": "CT lower extremities without contrast",
}


def observation(
    oid: str,
    concept: str,
    *,
    site_text: str | None = None,
    site_code: dict[str, Any] | None = None,
    laterality: str | None = None,
    negated: bool = False,
    effective: str = "2026-10-02T09:30:00Z",
    **qualifiers: str,
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1"},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "imaging",
                        "display": "Imaging",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOCAL, "code": concept}]},
        "subject": PATIENT,
        "effectiveDateTime": effective,
        "valueCodeableConcept": {
            "coding": [
                {"system": SCT, "code": "2667000", "display": "Absent"}
                if negated
                else {"system": SCT, "code": "52101004", "display": "Present"}
            ]
        },
    }
    if site_text or site_code:
        obs["bodySite"] = {
            **({"coding": [site_code]} if site_code else {}),
            **({"text": site_text} if site_text else {}),
        }
    comps = []
    lat_codes = {
        "right": ("24028007", "Right"),
        "left": ("7771000", "Left"),
        "bilateral": ("51440002", "Right and left"),
    }
    if laterality:
        code, display = lat_codes[laterality]
        comps.append(
            {
                "code": {"coding": [{"system": SCT, "code": "272741003", "display": "Laterality"}]},
                "valueCodeableConcept": {"coding": [{"system": SCT, "code": code, "display": display}]},
            }
        )
    for name, value in qualifiers.items():
        comps.append(
            {
                "code": {"coding": [{"system": LOCAL, "code": name.replace("_", "-")}]},
                "valueCodeableConcept": {"coding": [{"system": LOCAL, "code": value}]},
            }
        )
    if comps:
        obs["component"] = comps
    return obs


def imaging_study(sid: str, modality: str, started: str = "2026-10-02T09:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "id": sid,
        "status": "available",
        "subject": PATIENT,
        "started": started,
        "modality": [{"system": DCM, "code": modality}],
        "numberOfSeries": 1,
        "series": [
            {
                "uid": "2.25.1234567890" + sid.replace("-", ""),
                "modality": {"system": DCM, "code": modality},
                "bodySite": {"system": SCT, "code": "61685007", "display": "Lower limb structure"},
            }
        ],
    }


def source_bone_scan_text_only() -> dict[str, Any]:
    return report("bone-scan-1", BONE_SCAN_CODE, text=SOURCE_BONE_SCAN_TEXT, conclusion=SOURCE_BONE_SCAN_CONCLUSION)


def source_bone_scan_coded() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The same study, coded: result Observations, conclusionCode, ImagingStudy; no text."""
    obs = [
        observation(
            "bs-o1",
            "soft-tissue-uptake",
            distribution="diffuse",
            layer="soft-tissue",
            attributed_to="renal-failure-soft-tissue-clearance",
        ),
        observation(
            "bs-o2",
            "soft-tissue-uptake",
            site_text="Both calves",
            laterality="bilateral",
            distribution="asymmetric",
            intensity="intense",
            layer="subcutaneous",
        ),
        observation("bs-o3", "faint-renal-uptake", site_text="Kidneys", laterality="bilateral"),
        observation("bs-o4", "arthroplasty-photopenia", site_text="Right knee", laterality="right"),
        observation("bs-o5", "degenerative-joint-uptake", site_text="Midfoot"),
        observation("bs-o6", "impression-renal-failure-soft-tissue-clearance"),
        observation("bs-o7", "impression-calciphylaxis", certainty="probable"),
    ]
    study = imaging_study("bs-study-1", "NM")
    rep = report(
        "bone-scan-1",
        {"text": "Bone scan"},
        results=[f"Observation/{o['id']}" for o in obs],
        studies=["ImagingStudy/bs-study-1"],
    )
    resources = {f"Observation/{o['id']}": o for o in obs}
    resources["ImagingStudy/bs-study-1"] = study
    return rep, resources


def source_ct_text_only() -> dict[str, Any]:
    return report("ct-1", CT_CODE, text=SOURCE_CT_TEXT, effective="2026-10-05T14:00:00Z")


def source_ct_coded() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    obs = [
        observation(
            "ct-o1",
            "subcutaneous-calcification",
            site_text="Both calves",
            laterality="bilateral",
            layer="subcutaneous",
            effective="2026-10-05T14:00:00Z",
        ),
        observation(
            "ct-o2",
            "cutaneous-calcification",
            site_code={"system": SCT, "code": "53840002", "display": "Calf of leg"},
            laterality="bilateral",
            layer="cutaneous",
            effective="2026-10-05T14:00:00Z",
        ),
    ]
    study = imaging_study("ct-study-1", "CT", started="2026-10-05T13:50:00Z")
    rep = report(
        "ct-1",
        {"text": "CT lower extremities"},
        effective="2026-10-05T14:00:00Z",
        results=[f"Observation/{o['id']}" for o in obs],
        studies=["ImagingStudy/ct-study-1"],
    )
    resources = {f"Observation/{o['id']}": o for o in obs}
    resources["ImagingStudy/ct-study-1"] = study
    return rep, resources
