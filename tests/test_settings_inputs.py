"""Hardened settings (issue 8, item 6): non-finite numbers, one port for two servers, folders the bot cannot
write. Each bad input gets a clear line in the one report, and main.py exits 2 listing all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.folders import folder_problem
from config.mcp_config import ConfigurationError, validate_monitoring_config
from config.settings import Settings
from tests.test_main_process import run_main

FLOAT_FIELDS = sorted(name for name, info in Settings.model_fields.items() if info.annotation is float)


def problems_for(tmp_path: Path, **overrides: object) -> list[str]:
    with pytest.raises(ConfigurationError) as refused:
        validate_monitoring_config(tmp_path, **overrides)
    return refused.value.problems


def test_every_float_setting_is_covered() -> None:
    assert {"max_daily_loss", "copy_ratio", "max_slippage", "stop_loss"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_non_finite_numbers_are_rejected_for_every_float_setting(tmp_path: Path, field: str, value: str) -> None:
    problems = problems_for(tmp_path, **{field: value})
    mine = [problem for problem in problems if problem.startswith(f"{field.upper()}:")]
    assert mine, problems
    assert "finite number" in mine[0]
    assert repr(value) in mine[0]


def test_max_daily_loss_inf_is_refused_with_the_value_received(tmp_path: Path) -> None:
    assert problems_for(tmp_path, max_daily_loss="inf") == [
        "MAX_DAILY_LOSS: Input should be a finite number (received 'inf')"
    ]


def test_the_dashboard_and_metrics_ports_must_differ(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, dashboard_port=9100, metrics_port=9100)
    assert problems == [
        "DASHBOARD_PORT (9100) and METRICS_PORT (9100) must differ: the dashboard and /metrics are two servers"
    ]


def test_two_zero_ports_mean_any_free_port_each_and_are_fine(tmp_path: Path) -> None:
    settings = validate_monitoring_config(tmp_path, dashboard_port=0, metrics_port=0)
    assert settings.dashboard_port == settings.metrics_port == 0


def test_equal_ports_are_listed_along_with_a_bad_field(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, dashboard_port=9100, metrics_port=9100, copy_ratio="nan")
    assert any(problem.startswith("COPY_RATIO:") for problem in problems)
    assert any("must differ" in problem for problem in problems)


# --- folders ---------------------------------------------------------------------------------------


def test_a_missing_folder_is_created_and_proven_writable(tmp_path: Path) -> None:
    state, logs = tmp_path / "deep" / "state", tmp_path / "deep" / "logs"
    validate_monitoring_config(tmp_path, check_folders=True, state_dir=state, log_dir=logs)
    assert state.is_dir() and logs.is_dir()
    assert list(state.iterdir()) == [] and list(logs.iterdir()) == []  # the write probe leaves nothing


def test_a_file_in_place_of_a_folder_is_a_clear_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert folder_problem("LOG_DIR", blocker, create=False) == (
        f"LOG_DIR: {blocker} is not a folder; expected a folder the bot can write (fix its permissions or set "
        f"LOG_DIR elsewhere) (received {str(blocker)!r})"
    )
    assert folder_problem("LOG_DIR", blocker, create=True) == folder_problem("LOG_DIR", blocker, create=False)
    assert folder_problem("LOG_DIR", blocker / "logs", create=True) == (
        f"LOG_DIR: {blocker / 'logs'} cannot be created: {blocker} is not a folder; expected a folder the bot can "
        f"write (fix its permissions or set LOG_DIR elsewhere) (received {str(blocker / 'logs')!r})"
    )


def test_a_read_only_folder_fails_the_real_write_probe(tmp_path: Path) -> None:
    # root ignores permission bits, so use what even root cannot write in: a folder on a read-only mount
    readonly = Path("/proc/self")
    if not readonly.is_dir():  # pragma: no cover - every Linux has it
        pytest.skip("no /proc")
    problem = folder_problem("STATE_DIR", readonly, create=False)
    assert problem is not None and problem.startswith("STATE_DIR: cannot write in /proc/self (")


def test_folders_are_checked_only_when_asked_and_listed_with_the_field_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    validate_monitoring_config(tmp_path, log_dir=blocker / "logs")  # the sidecar's callers: no folder check
    problems = problems_for_folders(tmp_path, log_dir=blocker / "logs", state_dir=tmp_path / "s", stop_loss="nan")
    assert [problem.split(":")[0] for problem in problems] == ["STOP_LOSS", "LOG_DIR"]
    assert not (tmp_path / "s").exists(), "nothing is created while other settings are invalid"


def problems_for_folders(tmp_path: Path, **overrides: object) -> list[str]:
    with pytest.raises(ConfigurationError) as refused:
        validate_monitoring_config(tmp_path, check_folders=True, **overrides)
    return refused.value.problems


# --- main.py -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_main_exits_2_listing_every_bad_input_at_once_without_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    done = run_main(
        tmp_path,
        "--duration",
        "1",
        MAX_DAILY_LOSS="inf",
        DASHBOARD_PORT="9100",
        METRICS_PORT="9100",
        LOG_DIR=str(blocker / "logs"),
    )

    assert done.returncode == 2, done.stderr[-2000:]
    assert "invalid configuration (3 problem(s))" in done.stderr
    assert "MAX_DAILY_LOSS: Input should be a finite number (received 'inf')" in done.stderr
    assert "DASHBOARD_PORT (9100) and METRICS_PORT (9100) must differ" in done.stderr
    assert f"LOG_DIR: {blocker / 'logs'} cannot be created" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists(), "nothing may be written with invalid settings"


@pytest.mark.integration
def test_main_with_an_unwritable_log_dir_alone_exits_2_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = run_main(tmp_path, "--duration", "1", LOG_DIR=str(blocker))
    assert done.returncode == 2
    assert f"LOG_DIR: {blocker} is not a folder" in done.stderr
    assert "Traceback" not in done.stderr
