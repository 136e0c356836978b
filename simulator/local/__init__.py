"""The local stack (``make run``) and the pipeline the tests drive, on 127.0.0.1, without Docker.

* ``pipeline``: template.yaml created in moto (infra.deploy) and the real handlers wired to it,
  in one process; the tests use it inside ``mock_aws``, the local stack against a moto server;
* ``stack`` / ``__main__``: the run command: moto's own process (``moto_process``), the emulators,
  the pipeline, delivery, alarms, the reconciler's schedule, the HTTP front and its pages (``static/``);
* what Lambda and API Gateway do: ``environment`` (one invocation at a time, the Timeout),
  ``delivery`` (SQS event source mappings), ``gateway`` + ``front`` (the REST API and its HTTP
  server), ``events`` (real-shaped events and contexts);
* what CloudWatch does: ``metrics`` (EMF, queue and Lambda metrics) and ``alarms`` (evaluation);
* ``readiness`` (the checks before "Ready."), ``process`` (the run command in a subprocess, ports).
"""
