"""template.yaml offline: read it (short-form tags included) and translate SAM to plain CloudFormation.

Local ``CodeUri``/``ContentUri`` paths become S3 locations in ``ARTIFACT_BUCKET`` (SAM accepts
only those), and each translated function and layer keeps the local path in its Metadata, so the
local stack knows where the code of what it deployed lives.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3

Template = dict[str, Any]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_BUCKET = "local-sam-artifacts"
"""Bucket named in place of local CodeUri/ContentUri paths; deploy_to_moto uploads dummy code there."""
LOCAL_URI_KEY = "LocalUri"
"""Metadata key on translated Lambda functions and layers: the local path the SAM template named."""
MOTO_ACCOUNT_ID = "123456789012"

_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class TemplateError(Exception):
    """The template cannot be translated (SAM reports the causes)."""


def load_template(path: str | Path = "template.yaml") -> Template:
    """Read a CloudFormation/SAM YAML or JSON template, short-form tags (!Ref, !Sub...) included.

    A relative path that does not exist from the working directory is taken from the project root.
    Returns plain dicts, lists and strings (long-form intrinsics: ``{"Ref": ...}``).
    """
    from cfnlint.decode.cfn_yaml import load  # cfn-lint's CloudFormation-aware YAML loader

    file = Path(path)
    if not file.is_absolute() and not file.exists():
        file = PROJECT_ROOT / file
    plain: Template = json.loads(json.dumps(load(str(file)), default=str))
    return plain


def load_and_translate(path: str | Path, *, region: str = "us-east-1") -> tuple[Template, Template]:
    """(the SAM template, its CloudFormation translation), as :func:`load_template` and :func:`translate`
    give them, kept between runs in the temporary directory under a digest of everything they depend on
    (the template's bytes, this module, the cfn-lint and SAM translator versions, the region). Reading the
    template imports cfn-lint and translating imports SAM: together most of two seconds of every start of
    the local stack."""
    file = Path(path)
    if not file.is_absolute() and not file.exists():
        file = PROJECT_ROOT / file
    digest = hashlib.sha256()
    for part in (file.read_bytes(), Path(__file__).read_bytes(), version("cfn-lint"), version("aws-sam-translator")):
        digest.update(part if isinstance(part, bytes) else part.encode())
    digest.update(region.encode())
    cached = Path(tempfile.gettempdir()) / f"donations-template-{digest.hexdigest()[:32]}.json"
    try:
        both = json.loads(cached.read_text())
        return both["sam"], both["cfn"]
    except (OSError, ValueError, KeyError):
        pass
    sam = load_template(file)
    cfn = translate(sam, region=region)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")  # then renamed: a concurrent reader sees all or nothing
    partial.write_text(json.dumps({"sam": sam, "cfn": cfn}))
    partial.replace(cached)
    return sam, cfn


class _OfflinePolicyLoader:
    """Stands in for SAM's managed-policy loader, which calls IAM: no managed-policy names to map."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: Template, *, region: str = "us-east-1") -> Template:
    """Translate a SAM template into plain CloudFormation, offline.

    Local ``CodeUri``/``ContentUri`` paths become ``s3://ARTIFACT_BUCKET/<LogicalId>.zip`` (SAM
    only accepts S3 locations); the original path is kept in each translated function's and
    layer's ``Metadata[LOCAL_URI_KEY]``. The region is given to the translator through a boto3
    session, so no environment variable changes.
    """
    sam = copy.deepcopy(template)
    local_uris = _use_artifact_bucket(sam)
    cfn = _run_translator(sam, region)
    _record_local_uris(cfn, local_uris)
    return cfn


def _use_artifact_bucket(sam: Template) -> dict[str, str]:
    """Replace local code paths by S3 locations; return S3 key -> local path."""
    local_uris: dict[str, str] = {}
    globals_function = sam.get("Globals", {}).get("Function", {})
    if isinstance(globals_function.get("CodeUri"), str):
        local_uris["Globals.zip"] = globals_function["CodeUri"]
        globals_function["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/Globals.zip"
    for logical_id, resource in sam.get("Resources", {}).items():
        prop = _LOCAL_URI_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        uri = properties.get(prop) if prop else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            key = f"{logical_id}.zip"
            local_uris[key] = uri
            properties[prop] = f"s3://{ARTIFACT_BUCKET}/{key}"
    return local_uris


def _run_translator(sam: Template, region: str) -> Template:
    from samtranslator.feature_toggle.feature_toggle import FeatureToggle, FeatureToggleDefaultConfigProvider
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    class AllFeaturesOff(FeatureToggle):  # type: ignore[misc]  # samtranslator is untyped (Any)
        """What SAM's default toggle answers (no feature is on), minus a warning per question."""

        def is_enabled(self, feature_name: str) -> bool:
            return False

    session = boto3.session.Session(region_name=region)  # only its region is read
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    saved_region = ArnGenerator.BOTO_SESSION_REGION_NAME  # Translator sets this class attribute
    try:
        # Same steps as samtranslator.translator.transform.transform, which has no region argument;
        # the py27 marking keeps generated logical ids (hashes) identical to `sam deploy`'s.
        to_py27_compatible_template(sam, {})
        translator = Translator(None, Parser(), boto_session=session, metrics=metrics)
        cfn = translator.translate(
            sam,
            parameter_values={},
            passthrough_metadata=True,
            feature_toggle=AllFeaturesOff(FeatureToggleDefaultConfigProvider(), None, None, region),
            get_managed_policy_map=_OfflinePolicyLoader().load,
        )
        plain: Template = json.loads(json.dumps(undo_mark_unicode_str_in_template(cfn)))
        return plain
    except InvalidDocumentException as error:
        causes = "; ".join(cause.message for cause in error.causes)
        raise TemplateError(f"SAM translation failed: {causes}") from error
    finally:
        ArnGenerator.BOTO_SESSION_REGION_NAME = saved_region
        metrics.publish()  # to the dummy publisher; silences its "unpublished metrics" warning


def _record_local_uris(cfn: Template, local_uris: Mapping[str, str]) -> None:
    for resource in cfn.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        location = properties.get("Code") or properties.get("Content")
        if resource.get("Type") not in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion"):
            continue
        if isinstance(location, dict) and location.get("S3Bucket") == ARTIFACT_BUCKET:
            uri = local_uris.get(str(location.get("S3Key")))
            if uri is not None:
                resource.setdefault("Metadata", {})[LOCAL_URI_KEY] = uri
