"""What a deployer must give the stack, and what it refuses (docs/security.md, "What a deployer must do").

The form's origin goes into every CORS answer, the gateway's errors and the WAF's 429: it has no default
and can never be "*". The Turnstile site key has no default either, and Cloudflare's test keys (which pass
or fail every visitor whatever they do) are refused: only a real widget's key deploys. The local stack
gives its own values for both.
"""

from __future__ import annotations

import re

import pytest

from infra.deploy import Template
from simulator.local.pipeline import LOCAL_FORM_ORIGIN, ProviderEndpoints

pytestmark = pytest.mark.infra

# Cloudflare's Turnstile test site keys ("Testing", developers.cloudflare.com/turnstile/troubleshooting/testing/):
# always passes, always blocks, forces an interactive challenge (visible and invisible variants).
TURNSTILE_TEST_SITE_KEYS = (
    "1x00000000000000000000AA",
    "2x00000000000000000000AB",
    "1x00000000000000000000BB",
    "2x00000000000000000000BB",
    "3x00000000000000000000FF",
)


def _accepts(template: Template, parameter: str, value: str) -> bool:
    spec = template["Parameters"][parameter]
    return re.fullmatch(spec.get("AllowedPattern", ".*"), value) is not None


@pytest.mark.parametrize("parameter", ["AllowedOrigin", "TurnstileSiteKey"])
def test_the_deployer_must_give_it(sam_template: Template, parameter: str) -> None:
    assert "Default" not in sam_template["Parameters"][parameter]


@pytest.mark.parametrize(
    "origin", ["*", "https://*.example.org", "null", "", "https://give.example.org/", "http://give.example.org"]
)
def test_the_allowed_origin_is_never_a_wildcard_nor_plain_http_to_another_host(
    sam_template: Template, origin: str
) -> None:
    assert not _accepts(sam_template, "AllowedOrigin", origin)


@pytest.mark.parametrize(
    "origin",
    ["https://give.example.org", "https://donate.example.org:8443", LOCAL_FORM_ORIGIN, "http://localhost:3000"],
)
def test_a_real_origin_and_the_local_form_are_accepted(sam_template: Template, origin: str) -> None:
    assert _accepts(sam_template, "AllowedOrigin", origin)


@pytest.mark.parametrize("site_key", TURNSTILE_TEST_SITE_KEYS)
def test_cloudflares_test_site_keys_do_not_deploy(sam_template: Template, site_key: str) -> None:
    assert not _accepts(sam_template, "TurnstileSiteKey", site_key)


def test_a_real_widgets_site_key_and_the_local_emulators_deploy(sam_template: Template) -> None:
    assert _accepts(sam_template, "TurnstileSiteKey", "0x4AAAAAAABkMYinukE8nzY")
    assert _accepts(sam_template, "TurnstileSiteKey", ProviderEndpoints().turnstile_sitekey)


def test_the_origin_reaches_cors_the_gateways_errors_and_the_wafs_429(sam_template: Template) -> None:
    # Given where the template sends AllowedOrigin
    api = sam_template["Resources"]["DonationsApi"]["Properties"]
    acl = sam_template["Resources"]["DonationsWebAcl"]["Properties"]
    waf_origins = [
        header["Value"]
        for rule in acl["Rules"]
        for header in rule.get("Action", {}).get("Block", {}).get("CustomResponse", {}).get("ResponseHeaders", [])
        if header["Name"] == "Access-Control-Allow-Origin"
    ]

    # Then every one of them is the parameter itself, never a literal
    assert api["Cors"]["AllowOrigin"] == {"Fn::Sub": "'${AllowedOrigin}'"}
    for response in api["GatewayResponses"].values():
        assert response["ResponseParameters"]["Headers"]["Access-Control-Allow-Origin"] == api["Cors"]["AllowOrigin"]
    assert waf_origins and all(origin == {"Ref": "AllowedOrigin"} for origin in waf_origins)
    assert sam_template["Globals"]["Function"]["Environment"]["Variables"]["CORS_ORIGIN"] == {"Ref": "AllowedOrigin"}
