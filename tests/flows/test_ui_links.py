"""Links into the Prefect UI: the V2 UI of a self-hosted server, Cloud's own paths."""

from __future__ import annotations

from uuid import UUID

import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

from flows.ui_links import flow_run_url, paused_runs_url, ui_base_url

RUN = UUID("e714844f-f37b-4d24-9c07-418ed2802dc3")


def test_a_self_hosted_server_links_open_its_v2_ui() -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        assert ui_base_url() == "http://127.0.0.1:4200/v2"
        assert flow_run_url(RUN) == f"http://127.0.0.1:4200/v2/runs/flow-run/{RUN}"
        assert paused_runs_url() == ("http://127.0.0.1:4200/v2/runs?state-types=%5B%22PAUSED%22%5D")


def test_prefect_cloud_keeps_its_paths() -> None:
    api = "https://api.prefect.cloud/api/accounts/a1/workspaces/w1"
    with temporary_settings(updates={PREFECT_API_URL: api}):
        ui = "https://app.prefect.cloud/account/a1/workspace/w1"
        assert flow_run_url(RUN) == f"{ui}/runs/flow-run/{RUN}"
        assert paused_runs_url() == f"{ui}/runs"


@pytest.mark.parametrize("ui_url", ["http://127.0.0.1:4200/", "http://127.0.0.1:4200"])
def test_an_explicit_ui_url_gets_no_double_slash(ui_url: str) -> None:
    updates = {PREFECT_API_URL: "http://127.0.0.1:4200/api", PREFECT_UI_URL: ui_url}
    with temporary_settings(updates=updates):
        assert flow_run_url(RUN) == f"http://127.0.0.1:4200/v2/runs/flow-run/{RUN}"


def test_no_ui_no_link() -> None:
    with temporary_settings(updates={PREFECT_API_URL: None, PREFECT_UI_URL: None}):
        assert (ui_base_url(), flow_run_url(RUN), paused_runs_url()) == (None, None, None)
