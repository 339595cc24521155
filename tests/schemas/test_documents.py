from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from schemas import DOCUMENTS, render_schema, schema_errors, schema_path
from tests.conftest import sample_manifest


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_committed_schema_files_match_the_models(name: str) -> None:
    path = schema_path(name)
    assert path.exists(), f"{path} missing: run 'orchestrator schemas export'"
    assert path.read_text() == render_schema(name), (
        f"{path.name} drifts from its model: run 'orchestrator schemas export'"
    )


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_committed_schemas_are_valid_draft_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(json.loads(schema_path(name).read_text()))


def test_schema_errors_name_the_place() -> None:
    data = sample_manifest().model_dump(mode="json")
    assert schema_errors("run-manifest", data) is None
    data["mode"]["mode"] = "turbo"
    error = schema_errors("run-manifest", data)
    assert error is not None
    assert error.startswith("mode/mode:")
