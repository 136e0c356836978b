"""The local stack's start reads the translated template from a cache: never a stale one."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.deploy import Template, load_and_translate
from tests.infra.tooling import TEMPLATE

pytestmark = pytest.mark.infra


def test_the_cached_translation_is_the_translation_and_an_edit_is_translated_afresh(
    tmp_path: Path, sam_template: Template, cfn_template: Template
) -> None:
    # Given a copy of the template, loaded twice (the second time from the cache)
    copy = tmp_path / "template.yaml"
    copy.write_text(Path(TEMPLATE).read_text())
    first = load_and_translate(copy)
    again = load_and_translate(copy)

    # Then both are what reading and translating it gives
    assert first == again == (sam_template, cfn_template)

    # When the template changes, then the next start gets the changed one, not the cached one
    copy.write_text(Path(TEMPLATE).read_text().replace("Description: >-\n", "Description: >-\n  Edited.\n", 1))
    sam, cfn = load_and_translate(copy)
    assert sam["Description"].startswith("Edited. ") and cfn["Description"].startswith("Edited. ")
