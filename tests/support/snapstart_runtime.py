"""What Lambda's Python runtime does with SnapStart's runtime hooks, for tests.

The runtime reads the hooks registered with ``snapshot_restore_py`` through the library's
``get_before_snapshot`` / ``get_after_restore`` and calls each ``func(*args, **kwargs)``: the
before-snapshot hooks in the reverse order of their registration, the after-restore hooks in their
order (aws/aws-lambda-python-runtime-interface-client, awslambdaric/lambda_runtime_hooks_runner.py;
"Lambda SnapStart runtime hooks for Python" says the same). The runtime pops the before-snapshot
hooks as it runs them, once per environment; here they stay registered, for the next test.
"""

from __future__ import annotations

from snapshot_restore_py import get_after_restore, get_before_snapshot


def take_snapshot() -> None:
    for func, args, kwargs in reversed(list(get_before_snapshot())):
        func(*args, **kwargs)


def restore() -> None:
    for func, args, kwargs in list(get_after_restore()):
        func(*args, **kwargs)
