"""The clinical cases of fhir_examples/, one module per family; ``fhir_examples/build_cases.py`` writes them.

Each case is one builder function that makes its synthetic patient and declares its ``Case`` (request and
expectations) once, with ``common.add``."""
