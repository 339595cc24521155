"""Codex server settings that point at a replay provider."""

from __future__ import annotations

from typing import Any

from schemas import CodexServerConfig, ModelProvider


def replay_config(base_url: str, **settings: Any) -> CodexServerConfig:
    """Codex server settings for the replay provider at ``base_url`` (model ``replay``).

    ``settings`` are further :class:`CodexServerConfig` fields (e.g. timeouts).
    """
    provider = ModelProvider(name="replay", base_url=base_url)
    return CodexServerConfig.model_validate({"provider": provider, **settings})
