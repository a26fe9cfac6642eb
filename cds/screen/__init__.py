"""Population screening: a FHIR Bulk Data export -> every patient through the patient-view pipeline on Dask.

Public API: ``screen`` (cds.screen.run), ``compare_rule_sets`` / ``comparison_from``
(cds.screen.compare, for ``cds rules diff --population``), ``write_worklist`` / ``WORKLIST_SCHEMA``
(cds.screen.worklist), ``write_population`` (cds.screen.synth), ``convert_bundles``
(cds.screen.convert). Design: docs/adr/0010-population-screening-on-dask.md.
"""
