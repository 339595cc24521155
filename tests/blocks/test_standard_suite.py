"""Prefect's block standard test suite, for each of our block types."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites.blocks import BlockStandardTestSuite

from blocks import CodexCloudEndpoint, CodexServerSettings, VaultCredentials


class _OurBlocks(BlockStandardTestSuite):
    def test_has_a_valid_image(self, block: type[Block]) -> None:
        """We ship no logo: checking one means fetching it, and tests make no internet call.

        (Prefect's own version is skipped where Pillow is missing, as it is here.)
        """
        assert block._logo_url is None


class TestVaultCredentials(_OurBlocks):
    @pytest.fixture
    def block(self) -> type[Block]:
        return VaultCredentials


class TestCodexServerSettings(_OurBlocks):
    @pytest.fixture
    def block(self) -> type[Block]:
        return CodexServerSettings


class TestCodexCloudEndpoint(_OurBlocks):
    @pytest.fixture
    def block(self) -> type[Block]:
        return CodexCloudEndpoint
