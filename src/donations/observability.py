"""Powertools Logger, Metrics and Tracer shared by every function (service name from the environment)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from wrapt import register_post_import_hook

logger = Logger(utc=True)
metrics = Metrics()
# X-Ray traces the AWS calls (botocore) of every function, and the HTTP calls of requests (Stripe's transport)
# wherever requests is loaded. Patching it when it is imported, rather than patch_all() at once, traces the same
# calls without importing requests (and sqlite3) into functions that never use them.
tracer = Tracer(patch_modules=("botocore",))
register_post_import_hook(lambda _: tracer.patch(("requests",)), "requests")

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]
