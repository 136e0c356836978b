"""donations-ops: the operator tool for a deployed (or local) donation pipeline.

Installed with the project (``pip install .``) as the ``donations-ops`` command; ``python -m
donations_ops`` runs the same. It reads the stack from CloudFormation and acts on it through the
AWS APIs only, so it needs the core's dependencies plus ``rich``, nothing from ``infra/``.

* ``cli``: argument parsing and printing, nothing else;
* ``stack``: the stack's queues (with their DLQs), tables, topics and alarms, found by logical id;
* ``queues``: depths, age of the oldest message, DLQ contents, read without consuming;
* ``alarms``: the stack's alarm states;
* ``redrive``: DLQ messages moved back (SQS's move task, or a copy that never loses a message);
* ``aws`` / ``clients``: which account or endpoint, and one boto3 client per service;
* ``receipts`` / ``receipts_cli``: ``receipts install-template``, the shipped receipt template
  (``receipt_template/``) created or updated in SendGrid;
* ``smoke``: ``make smoke``, the product's own Stripe and SendGrid calls against the real services
  in test mode.
"""
