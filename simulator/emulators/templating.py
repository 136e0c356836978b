"""Handlebars for the SendGrid emulator: Handlebars.js itself, in one Node.js process per emulator.

SendGrid renders dynamic templates with Handlebars ("Using Handlebars", SendGrid docs). No Python port
is kept up to date (pybars3's last release is from 2019, pybars4's from 2021), so the emulator asks
Handlebars.js from npm (``handlebars/package.json``, installed by ``make install`` with ``npm ci``)
through ``handlebars/render.js``: one JSON line per request on a pipe, started on first use and
stopped with the emulator (it also exits when the pipe closes).

    renderer = HandlebarsRenderer()
    renderer.render("Hello {{name}}", {"name": "Ada"})   # "Hello Ada"
    renderer.variables("{{#if a}}{{b}}{{/if}}")          # TemplateVariables(variables=("a", "b"), helpers=("if",))
"""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HANDLEBARS_DIR = Path(__file__).with_name("handlebars")
SCRIPT = HANDLEBARS_DIR / "render.js"
ANSWER_TIMEOUT_SECONDS = 10.0
INSTALL_HINT = "run `make install` (npm ci in simulator/emulators/handlebars) with Node.js on PATH"


class TemplateError(Exception):
    """Handlebars refused the template (a syntax error, a missing helper)."""


class RendererUnavailable(RuntimeError):
    """Node.js or the handlebars package is missing, or the renderer stopped answering."""


@dataclass(frozen=True)
class TemplateVariables:
    variables: tuple[str, ...]
    """Top-level names the template reads from its data."""
    helpers: tuple[str, ...]
    """Helpers it calls (``if``, ``each``, ...)."""


class HandlebarsRenderer:
    """One Node.js process running Handlebars.js, started on first use; safe to share between threads."""

    def __init__(self, timeout: float = ANSWER_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def render(self, template: str, data: dict[str, Any]) -> str:
        return str(self._ask({"op": "render", "template": template, "data": data})["output"])

    def variables(self, template: str) -> TemplateVariables:
        answer = self._ask({"op": "variables", "template": template})
        return TemplateVariables(tuple(answer["variables"]), tuple(answer["helpers"]))

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()  # render.js exits when its input ends
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            process = self._running()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except OSError as error:
                self._abandon()
                raise RendererUnavailable(f"the Handlebars renderer stopped ({error})") from error
            line = self._read_line(process.stdout)
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise TemplateError(str(answer.get("error")))
        return answer

    def _read_line(self, stdout: IO[str]) -> str:
        """The answer, or RendererUnavailable after the timeout (a renderer that hangs is stopped)."""
        deadline = time.monotonic() + self._timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    self._abandon()
                    raise RendererUnavailable(f"the Handlebars renderer did not answer within {self._timeout} s")
        line = stdout.readline()
        if not line:
            code = self._abandon()
            raise RendererUnavailable(f"the Handlebars renderer exited (code {code}); {INSTALL_HINT}")
        return line

    def _running(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        node = shutil.which("node")
        if node is None or not (HANDLEBARS_DIR / "node_modules" / "handlebars").is_dir():
            raise RendererUnavailable(f"Handlebars.js is not installed: {INSTALL_HINT}")
        self._process = subprocess.Popen(  # noqa: S603 - our own script, run by the machine's node
            [node, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            cwd=HANDLEBARS_DIR,
            start_new_session=True,  # Ctrl-C stops the emulator, which closes our input: render.js then exits
        )
        return self._process

    def _abandon(self) -> int | None:
        """Stop a renderer that failed; the next request starts a new one."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        return process.wait(timeout=5)
