"""The autouse loopback guard (conftest) stops a codex with a model outside loopback."""

from __future__ import annotations

import pytest

from agents import CodexSession
from schemas import CodexServerConfig

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("base_url", "host"),
    [("https://api.openai.com/v1", "api.openai.com"), ("http://10.1.2.3:8080/v1", "10.1.2.3")],
)
async def test_a_codex_with_a_model_outside_loopback_is_never_started(
    base_url: str, host: str
) -> None:
    config = CodexServerConfig.model_validate({"provider": {"base_url": base_url}})
    with pytest.raises(AssertionError, match=f"outside loopback: '{host}'"):
        async with CodexSession(config):
            pass
