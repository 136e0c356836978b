"""The one Stripe API version the emulator speaks: the version the installed stripe SDK pins.

Every parameter it accepts and every field it returns comes from that SDK's generated types, which
describe exactly this version (stripe/_api_version.py). Upgrading the SDK changes the contract, so
it must be a deliberate change: importing the emulator fails until this constant is updated too.
"""

from __future__ import annotations

from stripe._api_version import _ApiVersion

DEFAULT_API_VERSION = "2026-10-28.endive"


class SdkVersionMismatch(RuntimeError):
    """The installed stripe SDK pins another API version than the emulator claims to speak."""


def check_sdk_version(sdk_version: str) -> None:
    if sdk_version != DEFAULT_API_VERSION:
        raise SdkVersionMismatch(
            f"the installed stripe SDK pins API version {sdk_version}, the Stripe emulator speaks "
            f"{DEFAULT_API_VERSION}: review what changed (the Stripe changelog for {sdk_version}), "
            "update DEFAULT_API_VERSION in simulator/emulators/stripe/version.py and run the whole suite"
        )


check_sdk_version(_ApiVersion.CURRENT)
