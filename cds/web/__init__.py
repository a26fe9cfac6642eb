"""The web layer: wiring only (docs/adr/0012-layers-and-wire-errors.md).

``cds.app.create_app`` builds a ``WebContext`` (settings, store, FHIR fetcher, authenticator, clock)
and includes the routers:

* ``middleware``  ``WireGuard``: request id, body limit and deadline, saturation, 500s, request log
* ``problems``    JSON responses, request bodies, and the mapping of errors to OperationOutcomes
* ``context``     ``WebContext`` and the dependencies the routes receive (``ContextDep``, ``PipelineDep``)
* ``hooks``       discovery, the hook call and feedback
* ``call``        one hook call in one worker thread: parse, checks, evaluation, snooze lookup, audit
* ``collector``   the cyclic collector paused during a hook call; the call freed after its answer
* ``snooze``      hiding cards a clinician snoozed, looked up right after the evaluation
* ``pages``       the pages behind the cards
* ``health``      ``/healthz``, ``/readyz``, ``/metrics``
"""
