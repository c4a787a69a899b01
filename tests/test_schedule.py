"""Cron expressions and ferkit's crontab lines, always on a crontab file in a temporary folder."""

from __future__ import annotations

import pytest

from ferkit.cli import main
from ferkit.scheduling import CronError, CronJob, Crontab, validate_cron


@pytest.fixture
def crontab_file(tmp_path, monkeypatch):
    path = tmp_path / "crontab"
    path.write_text("# the user's own line stays\n15 4 * * * /usr/bin/backup --all\n")
    monkeypatch.setenv("FERKIT_CRONTAB_FILE", str(path))
    return path


class TestValidateCron:
    @pytest.mark.parametrize(
        "expression",
        ["0 3 * * 1", "*/15 * * * *", "0 0-23/2 1,15 jan-jun mon-fri", "5 4 * * sun", "0 0 1 1 7", "  0   3 *  * 1 "],
    )
    def test_valid_expressions(self, expression):
        assert len(validate_cron(expression).split(" ")) == 5

    def test_macros_expand(self):
        assert validate_cron("@daily") == "0 0 * * *" and validate_cron("@WEEKLY") == "0 0 * * 0"

    @pytest.mark.parametrize(
        "expression, reason",
        [
            ("0 3 * *", "has 4 fields; cron needs 5"),
            ("60 3 * * 1", "minute: 60 is outside 0-59"),
            ("0 24 * * 1", "hour: 24 is outside 0-23"),
            ("0 3 0 * 1", "day of month: 0 is outside 1-31"),
            ("0 3 * 13 1", "month: 13 is outside 1-12"),
            ("0 3 * * funday", "day of week: 'funday' is not a number or one of"),
            ("*/0 * * * *", "minute: step '0'"),
            ("0 5-2 * * *", "hour: range '5-2' runs backwards"),
            ("0 3 * * 1,", "day of week: empty entry"),
            ("5/10 * * * *", "minute: a step needs a range or '\\*'"),
            ("@reboot", "@reboot is not a schedule"),
            ("@fortnightly", "unknown macro"),
        ],
    )
    def test_malformed_expressions_name_the_reason(self, expression, reason):
        with pytest.raises(CronError, match=reason):
            validate_cron(expression)


class TestCrontab:
    def test_install_list_remove_keep_the_users_lines(self, crontab_file):
        tab = Crontab()
        tab.install(CronJob("retrain", "0 3 * * 1", "echo hi"))
        assert [j.name for j in tab.jobs()] == ["retrain"]
        assert tab.jobs()[0] == CronJob("retrain", "0 3 * * 1", "echo hi")
        assert crontab_file.read_text().startswith("# the user's own line stays\n15 4 * * * /usr/bin/backup --all\n")
        tab.remove("retrain")
        assert crontab_file.read_text() == "# the user's own line stays\n15 4 * * * /usr/bin/backup --all\n"

    def test_a_second_schedule_of_the_same_name_needs_replace(self, crontab_file):
        tab = Crontab()
        tab.install(CronJob("retrain", "0 3 * * 1", "echo one"))
        with pytest.raises(CronError, match="'retrain' exists"):
            tab.install(CronJob("retrain", "0 4 * * 1", "echo two"))
        tab.install(CronJob("retrain", "0 4 * * 1", "echo two"), replace=True)
        assert [(j.cron, j.command) for j in tab.jobs()] == [("0 4 * * 1", "echo two")]

    def test_a_malformed_expression_writes_nothing(self, crontab_file):
        before = crontab_file.read_text()
        with pytest.raises(CronError, match="minute: 61"):
            Crontab().install(CronJob("retrain", "61 * * * *", "echo"))
        assert crontab_file.read_text() == before

    def test_removing_an_unknown_schedule_lists_the_installed_ones(self, crontab_file):
        Crontab().install(CronJob("nightly", "@daily", "echo"))
        with pytest.raises(CronError, match=r"no ferkit schedule named 'weekly'; installed: \['nightly'\]"):
            Crontab().remove("weekly")

    def test_bad_names_are_refused(self, crontab_file):
        with pytest.raises(CronError, match="schedule name 'two words'"):
            Crontab().install(CronJob("two words", "@daily", "echo"))


class TestScheduleCli:
    def test_install_writes_a_runnable_line_with_its_log(self, crontab_file, tmp_path, capsys):
        assert (
            main(
                [
                    "schedule",
                    "install",
                    "--cron",
                    "0 3 * * 1",
                    "--name",
                    "weekly",
                    "--log",
                    str(tmp_path / "logs" / "weekly.log"),
                ]
            )
            == 0
        )
        job = Crontab().jobs()[0]
        assert job.cron == "0 3 * * 1" and job.name == "weekly"
        assert "pipeline run pipelines.fer_retraining -c" in job.command and "configs/retraining.yaml" in job.command
        assert f">> {tmp_path / 'logs' / 'weekly.log'} 2>&1" in job.command
        assert "ZENML_CONFIG_PATH=" in job.command
        assert main(["schedule", "list"]) == 0
        assert "weekly\t0 3 * * 1" in capsys.readouterr().out

    def test_a_config_with_a_schedule_is_refused(self, crontab_file, capsys):
        assert main(["schedule", "install", "--cron", "@daily", "--config", "configs/schedule.yaml"]) == 2
        assert "has a `schedule:`" in capsys.readouterr().err
        assert Crontab().jobs() == []

    def test_the_installed_command_runs_and_logs(self, crontab_file, tmp_path):
        import subprocess

        main(
            [
                "schedule",
                "install",
                "--cron",
                "@hourly",
                "--name",
                "probe",
                "--pipeline",
                "pipelines.nothing",
                "--log",
                str(tmp_path / "probe.log"),
            ]
        )
        command = Crontab().jobs()[0].command
        subprocess.run(["bash", "-c", command], timeout=120)  # fails: no such pipeline; the log says so
        log = (tmp_path / "probe.log").read_text()
        assert "ferkit schedule" in log and "has no attribute 'nothing'" in log  # zenml ran, said why

    def test_a_malformed_cron_exits_2_with_the_reason(self, crontab_file, capsys):
        assert main(["schedule", "install", "--cron", "0 25 * * *"]) == 2
        assert "hour: 25 is outside 0-23" in capsys.readouterr().err
        assert Crontab().jobs() == []

    def test_remove(self, crontab_file, capsys):
        main(["schedule", "install", "--cron", "@daily", "--name", "nightly"])
        assert main(["schedule", "remove", "nightly"]) == 0
        assert Crontab().jobs() == [] and "removed schedule 'nightly'" in capsys.readouterr().out
