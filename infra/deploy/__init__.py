"""template.yaml into moto, offline: the same resources locally, in the tests and on AWS.

* ``template``: read template.yaml and translate SAM to CloudFormation (no AWS call);
* ``plan``: what moto's CloudFormation can create, and what is left out or done separately;
* ``moto``: create the stack in moto (in process or a moto server) and return what it created;
* ``post_create``: the alarms and subscriptions moto skips, created through their APIs;
* ``resources``: the created stack read back by logical id (functions, event sources, queues...);
* ``references``: which logical ids a fragment refers to;
* ``moto_atomic``: DynamoDB's per-item atomic conditional writes, which moto lacks;
* ``moto_speed``: moto's per-query sort of every item and per-message clock reads, made cheap;
* ``clients``: boto3 clients for moto, one per service.

Shared by the template contract tests (tests/infra), the test pipeline and the local stack.
"""

from infra.deploy.clients import AwsClients
from infra.deploy.moto import MOTO_ACCOUNT_ID, deploy_to_moto
from infra.deploy.plan import MotoPlan, prepare_for_moto
from infra.deploy.references import references
from infra.deploy.resources import DeployError, EventSourceSpec, FunctionSpec, StackResources
from infra.deploy.template import (
    ARTIFACT_BUCKET,
    LOCAL_URI_KEY,
    PROJECT_ROOT,
    Template,
    TemplateError,
    load_and_translate,
    load_template,
    translate,
)

__all__ = [
    "ARTIFACT_BUCKET",
    "LOCAL_URI_KEY",
    "MOTO_ACCOUNT_ID",
    "PROJECT_ROOT",
    "AwsClients",
    "DeployError",
    "EventSourceSpec",
    "FunctionSpec",
    "MotoPlan",
    "StackResources",
    "Template",
    "TemplateError",
    "deploy_to_moto",
    "load_and_translate",
    "load_template",
    "prepare_for_moto",
    "references",
    "translate",
]
