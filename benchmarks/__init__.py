"""Reproducible speed and memory measurements of the CDS service (``make bench``).

Modules, in the order data flows:

* ``synthetic``  realistic synthetic CDS Hooks requests of a long-term dialysis patient;
* ``timing``     repeat-and-summarise helpers (median, p90, p99);
* ``inprocess``  stage and whole-pipeline timings inside one Python process;
* ``rulepacks``  synthetic rule packs of 10/100/1,000 rules (when the rule language exists);
* ``memory``     RSS after start, after many requests, after many rule reloads;
* ``http``       loopback HTTP: uvicorn subprocesses and an async httpx load generator;
* ``targets``    the issue's targets, met or not, computed from the results;
* ``report``     ``benchmarks/results/latest.json``, ``docs/performance.md`` and the plot;
* ``run``        the command that runs everything: ``python -m benchmarks.run``;
* ``profile``    a cProfile of the in-process request path for one case;
* ``findings_bench`` report-text extraction per report, uncached and cached, and medspaCy's cold start;
* ``bench_facts`` (the FHIR layer's own, run on its own): fact extraction against ``orjson.loads``.

Every figure is a ``results.Result``; one JSON schema (``results.schema.json``) describes the file.
"""
