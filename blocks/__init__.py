"""Prefect block types: Vault credentials, Codex server settings, Codex Cloud endpoint.

Blocks hold configuration and build clients; no block stores a secret value. Register
them with ``prefect block register -m blocks``.
"""

from .cloud import CloudConnection, CodexCloudEndpoint
from .codex import CodexServerSettings
from .vault import VaultCredentials

__all__ = [
    "CloudConnection",
    "CodexCloudEndpoint",
    "CodexServerSettings",
    "VaultCredentials",
]
