"""The stack a donations-ops command runs against, and the commands to suggest for it.

A suggested command is pasted as it is: on the local stack it needs ``--local`` (moto's endpoint
and dummy credentials), else it fails with "You must specify a region". So every command the CLI
or the console suggests is written for the stack the suggestion was made about: the target options
the user gave, or, from the local stack's console, those that reach that stack.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from donations_ops.aws import LOCAL_ENDPOINT

PROGRAM = "donations-ops"
DEFAULT_STACK = "donations-local"
"""The stack name donations-ops and the run command use unless told otherwise."""

_COMMANDS = ("redrive", "replay", "dlq", "donor", "status", "alarms", "report", "card-testing", "receipts")
_ANY_COMMAND = "|".join(map(re.escape, _COMMANDS))
# "donations-ops --stack-name NAME alarms", as the template's alarm descriptions write their first command.
_WRITTEN_FOR_A_STACK = re.compile(rf"\b{PROGRAM}(?:\s+--stack-name\s+\S+)?(?=\s+(?:{_ANY_COMMAND})\b)")
# A bare command in backquotes, as the parked-message hints write them: `redrive receipt --force`.
_BARE_COMMAND = re.compile(rf"`((?:{_ANY_COMMAND})\b[^`]*)`")


@dataclass(frozen=True)
class Target:
    stack_name: str = DEFAULT_STACK
    local: bool = False
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def local_stack(cls, moto_url: str, stack_name: str) -> Target:
        """The local stack whose moto listens at ``moto_url`` (the endpoint is named unless it is the default)."""
        return cls(stack_name, local=True, endpoint_url=None if moto_url == LOCAL_ENDPOINT else moto_url)

    def options(self) -> list[str]:
        """The target options that reach this stack from any terminal."""
        words = ["--local"] if self.local else []
        if self.endpoint_url:
            words += ["--endpoint-url", self.endpoint_url]
        if self.stack_name != DEFAULT_STACK:
            words += ["--stack-name", self.stack_name]
        if self.region:
            words += ["--region", self.region]
        return words

    def command(self, rest: str) -> str:
        """``donations-ops <options> <rest>``: ``rest`` is a command and its arguments, e.g. "redrive receipt"."""
        return " ".join([PROGRAM, *map(shlex.quote, self.options()), rest])

    def complete(self, text: str) -> str:
        """``text`` with each command in it written for this stack: `redrive receipt` and "donations-ops
        --stack-name NAME alarms" both become ``donations-ops <options> ...``."""
        prefix = self.command("").rstrip()
        written = _WRITTEN_FOR_A_STACK.sub(lambda _: prefix, text)
        return _BARE_COMMAND.sub(lambda found: f"`{self.command(found.group(1))}`", written)
