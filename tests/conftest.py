"""The test world: template.yaml created in moto, the real handlers, and the provider emulators."""

import os

# Before any handler or Powertools import: dummy AWS credentials and a quiet, deterministic runtime.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "donations-test",
        "POWERTOOLS_METRICS_NAMESPACE": "DonationPipeline",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)

import io
import logging

import pytest
from moto import mock_aws

from infra.deploy.botocore_data import share_botocore_data
from simulator.emulators.sendgrid_emulator import SendGridEmulator
from simulator.emulators.stripe import StripeEmulator
from simulator.emulators.turnstile_emulator import TurnstileEmulator
from simulator.local.pipeline import (
    Pipeline,
    ProviderEndpoints,
    install_receipt_template,
    install_statement_template,
    restricted_stripe_keys,
)
from tests.support.iam_guard import role_guard
from tests.support.scheduling import DurationRecorder, Kind, LongestFirst, kind_of
from tests.support.world import CARD_TESTING_OUT_OF_REACH, World

logging.getLogger("werkzeug").setLevel(logging.ERROR)
# Each test builds the functions' clients again, on sessions of their own: botocore's files are read once.
share_botocore_data()

# Test-only settings: fail fast on provider timeouts; everything else is the template's.
TEST_ENVIRONMENT = {"PROVIDER_TIMEOUT_SECONDS": "1", "BACKOFF_BASE_SECONDS": "10", "BACKOFF_CAP_SECONDS": "600"}
TEST_ENVIRONMENT |= CARD_TESTING_OUT_OF_REACH  # tests/support/world.py says why


@pytest.fixture(scope="session")
def stripe_emulator():
    with StripeEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def sendgrid_emulator():
    with SendGridEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def turnstile_emulator():
    with TurnstileEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def pipeline(stripe_emulator, sendgrid_emulator, turnstile_emulator):
    providers = ProviderEndpoints(
        stripe_api_base=stripe_emulator.url,
        # Each function's own restricted key, with the permissions donations.stripe_keys writes down
        stripe_function_keys=restricted_stripe_keys(stripe_emulator),
        sendgrid_api_host=sendgrid_emulator.url,
        turnstile_verify_url=f"{turnstile_emulator.url}/turnstile/v0/siteverify",
    )
    # The shipped receipt template, installed as a deployer would: every receipt in the outbox is rendered.
    parameters = {
        "ReceiptTemplateId": install_receipt_template(providers),
        "StatementTemplateId": install_statement_template(providers),
    }
    saved = dict(os.environ)
    with mock_aws():
        yield Pipeline(
            providers, stack_name="donations-test", parameters=parameters, environment=TEST_ENVIRONMENT
        ).start()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def world(pipeline, stripe_emulator, sendgrid_emulator, turnstile_emulator):
    world = World(pipeline, stripe_emulator, sendgrid_emulator, turnstile_emulator)
    roles = role_guard(pipeline)
    world.reset()
    roles.take()
    yield world
    world.reset()
    # moto enforces no IAM: what the template's roles would have refused the handlers (tests/support/iam_guard.py)
    assert roles.take() == []


@pytest.fixture
def deployed_mail_timeout(world):
    """The deployed 8 s SendGrid timeout rather than the suite's 1 s, for tests that send many mails at once
    and are not about timeouts (World.provider_timeout says why)."""
    with world.provider_timeout("SendReceiptFunction", 8):
        yield


@pytest.fixture
def captured_logs():
    """Everything logged while the test runs: our JSON log lines and any library's records (with tracebacks)."""
    from donations.observability import logger

    powertools_lines = io.StringIO()
    previous = logger.registered_handler.setStream(powertools_lines)
    library_lines = io.StringIO()
    library_handler = logging.StreamHandler(library_lines)
    library_handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(library_handler)

    yield lambda: powertools_lines.getvalue() + library_lines.getvalue()

    logging.getLogger().removeHandler(library_handler)
    logger.registered_handler.setStream(previous)


def pytest_addoption(parser):
    parser.addoption(
        "--store-durations",
        action="store_true",
        help="write each test's duration to tests/durations.json (make durations), for the workers' order",
    )


def pytest_configure(config):
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(), "duration-recorder")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs ``-n auto --dist loadfile``: whole files per worker, the longest first
    (tests/support/scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    return LongestFirst(config, log)


def pytest_collection_modifyitems(config, items):
    """Chaos runs after every test that reads moto: it leaves metrics and alarm history in the shared moto
    that other tests read. Under pytest-xdist each worker has its own moto, emulators and local stack, and
    the scheduler (tests/support/scheduling.py) sees the same rule by folder.

    The unit tier never touches the network: pytest-socket fails a test marked ``unit`` that opens a socket.
    """
    for item in items:
        if item.get_closest_marker("unit") is not None:
            item.add_marker(pytest.mark.disable_socket)
        by_markers = _kind_by_markers(item)
        if by_markers is not kind_of(item.nodeid):
            raise pytest.UsageError(f"{item.nodeid} is {by_markers.value} by its markers: move it to its tier's folder")
    # In one process: the files with slow tests first, then the chaos tests, then the tiers that never touch
    # moto (the unit tier, the emulators' own tests). The order inside a file stays.
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    kinds_in_order = (Kind.READS_MOTO, Kind.CHAOS, Kind.NEVER_TOUCHES_MOTO)
    items.sort(key=lambda item: (kinds_in_order.index(kind_of(item.nodeid)), item.path not in slow_files))


def _kind_by_markers(item) -> Kind:
    if item.get_closest_marker("chaos") is not None:
        return Kind.CHAOS
    if item.get_closest_marker("unit") is not None or item.path.parent.name == "emulators":
        return Kind.NEVER_TOUCHES_MOTO
    return Kind.READS_MOTO


def pytest_sessionfinish(session):
    """Under pytest-xdist each worker counts its own hostile requests: hand the counts to the controller."""
    from tests.support.hostile import TALLY

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["hostile_tally"] = dict(TALLY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller adds up what each worker counted (pytest-xdist's hook; not called without -n)."""
    from tests.support.hostile import TALLY

    TALLY.update(getattr(node, "workeroutput", {}).get("hostile_tally", {}))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """How many generated hostile requests this run sent, and how many got a 5xx (the rule: none)."""
    from tests.support.hostile import TALLY

    if TALLY["requests"]:
        terminalreporter.write_line(
            f"hostile input: {TALLY['requests']} generated requests, {TALLY['answers >= 500']} answers >= 500"
        )
