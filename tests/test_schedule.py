"""Cron expressions and ferkit's crontab lines, always on a crontab file in a temporary folder."""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from ferkit.cli import main
from ferkit.scheduling import CronError, CronJob, Crontab, validate_cron


@pytest.fixture
def crontab_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_HOME", str(tmp_path / "home"))  # schedule scripts go to <home>/schedules
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


def cron_command(line: str) -> tuple[str, str | None]:
    """What cron(8) runs for a crontab line, by crontab(5)'s rules: after the five time fields, the
    command up to the first unescaped `%`; `\\%` stands for `%`; the text after the first `%` is
    standard input, each further `%` a newline. Returns (command, standard input or None)."""
    command = line.split(None, 5)[5]
    out, i = [], 0
    while i < len(command):
        if command.startswith("\\%", i):
            out.append("%")
            i += 2
        elif command[i] == "%":
            return "".join(out), command[i + 1 :].replace("%", "\n")
        else:
            out.append(command[i])
            i += 1
    return "".join(out), None


def install(*args: str) -> int:
    return main(["schedule", "install", *args])


class TestCronRules:
    def test_the_rules_cut_an_unescaped_percent(self):
        assert cron_command("* * * * * echo $(date +%F) done") == ("echo $(date +", "F) done")
        assert cron_command("* * * * * echo 50\\% # marker") == ("echo 50% # marker", None)

    def test_every_generated_line_runs_its_whole_command(self, crontab_file, tmp_path):
        weird = tmp_path / "100% sure" / "proj"
        (weird / "configs").mkdir(parents=True)
        (weird / "configs" / "retraining.yaml").write_text("parameters: {}\n")
        assert (
            install("--cron", "@daily", "--name", "pct", "--project", str(weird), "--log", str(weird / "%d.log")) == 0
        )
        line = next(x for x in crontab_file.read_text().splitlines() if "ferkit-schedule:pct" in x)
        command, stdin = cron_command(line)
        assert stdin is None  # nothing of the command became standard input
        assert shlex.split(command, comments=True) == [str(Path(os.environ["FERKIT_HOME"]) / "schedules" / "pct.sh")]


class TestScheduleCli:
    def test_install_writes_a_script_and_a_line_that_names_it(self, crontab_file, tmp_path, capsys):
        log = tmp_path / "logs" / "weekly.log"
        assert install("--cron", "0 3 * * 1", "--name", "weekly", "--log", str(log)) == 0
        job = Crontab().jobs()[0]
        assert job.cron == "0 3 * * 1" and job.name == "weekly"
        script = Path(os.environ["FERKIT_HOME"]) / "schedules" / "weekly.sh"
        assert shlex.split(job.command) == [str(script)] and os.access(script, os.X_OK)
        text = script.read_text()
        assert "pipeline run fer_retraining -c" in text and "configs/retraining.yaml" in text
        assert f">> {log} 2>&1" in text and "export ZENML_CONFIG_PATH=" in text
        assert main(["schedule", "list"]) == 0
        out = capsys.readouterr().out
        assert "weekly\t0 3 * * 1\tnext " in out

    def test_list_shows_when_each_schedule_runs_next(self, crontab_file):
        from datetime import datetime

        install("--cron", "30 4 * * *", "--name", "early")
        job = Crontab().jobs()[0]
        assert job.next_run(datetime(2026, 1, 1, 5, 0)) == datetime(2026, 1, 2, 4, 30)
        assert job.next_run(datetime(2026, 1, 1, 3, 0)) == datetime(2026, 1, 1, 4, 30)

    @pytest.mark.parametrize(
        "args, what",
        [
            (["--log", "/tmp/a\nb.log"], "log file '/tmp/a\\nb.log' contains a newline"),
            (["--log", "/tmp/a\rb.log"], "contains a carriage return"),
            (["--project", "/tmp/x\ny"], "project folder"),
            (["--pipeline", "fer_retraining\n* * * * * rm -rf /tmp/x"], "pipeline"),
            (["--name", "two\nlines"], "schedule name"),
        ],
    )
    def test_control_characters_are_refused_and_nothing_is_written(self, crontab_file, capsys, args, what):
        before = crontab_file.read_text()
        assert install("--cron", "@daily", *args) == 2
        assert what in capsys.readouterr().err
        assert crontab_file.read_text() == before
        assert not (Path(os.environ["FERKIT_HOME"]) / "schedules").exists()

    def test_an_environment_value_with_a_newline_is_refused(self, crontab_file, monkeypatch, capsys):
        monkeypatch.setenv("FER2013_PATH", "/data/fer\n* * * * * touch /tmp/owned")
        assert install("--cron", "@daily") == 2
        assert "environment value FER2013_PATH" in capsys.readouterr().err

    def test_a_config_with_a_schedule_is_refused(self, crontab_file, capsys):
        assert install("--cron", "@daily", "--config", "configs/schedule.yaml") == 2
        assert "has a `schedule:`" in capsys.readouterr().err
        assert Crontab().jobs() == []

    def test_the_installed_script_runs_and_logs(self, crontab_file, tmp_path):
        install(
            "--cron", "@hourly", "--name", "probe", "--pipeline", "pipelines.nothing", "--log", str(tmp_path / "p.log")
        )
        command, stdin = cron_command(next(line for line in crontab_file.read_text().splitlines() if "probe" in line))
        subprocess.run(["/bin/sh", "-c", command], timeout=300, env={"PATH": "/usr/bin:/bin"})  # as bare as cron's
        log = (tmp_path / "p.log").read_text()
        assert "ferkit schedule probe: pipelines.nothing" in log and "has no attribute 'nothing'" in log
        assert "ferkit schedule probe: exit 1" in log  # zenml ran, said why, and the script logged its exit

    @pytest.mark.skipif(shutil.which("flock") is None, reason="flock (util-linux) is not installed")
    def test_a_start_while_the_last_run_goes_is_skipped_and_logged(self, crontab_file, tmp_path, capsys):
        """Cron starts a schedule whether or not its last run has ended: an every-hour retraining that
        takes longer would pile runs onto one store. The script takes the schedule's lock (the
        kernel's, held here as a running script holds it) or logs that it skipped."""
        log = tmp_path / "p.log"
        install("--cron", "@hourly", "--name", "probe", "--pipeline", "pipelines.nothing", "--log", str(log))
        command, _ = cron_command(next(line for line in crontab_file.read_text().splitlines() if "probe" in line))
        lock = Path(os.environ["FERKIT_HOME"]) / "schedules" / "probe.lock"
        lock.touch()
        with lock.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the last run, still going
            done = subprocess.run(["/bin/sh", "-c", command], timeout=300, env={"PATH": "/usr/bin:/bin"})
            assert done.returncode == 0
            assert "ferkit schedule probe: skipped, its last run is still going" in log.read_text()
            assert "pipelines.nothing" not in log.read_text()  # zenml never started
        subprocess.run(["/bin/sh", "-c", command], timeout=300, env={"PATH": "/usr/bin:/bin"})  # the lock is free
        assert "ferkit schedule probe: exit 1" in log.read_text()
        with lock.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run still going when the schedule goes
            assert main(["schedule", "remove", "probe"]) == 0
            assert "its last run still goes" in capsys.readouterr().out
            assert lock.exists()  # a schedule installed again under the name waits for that run
        install("--cron", "@hourly", "--name", "probe", "--pipeline", "pipelines.nothing", "--log", str(log))
        assert main(["schedule", "remove", "probe"]) == 0
        assert not lock.exists()

    def test_paths_with_quotes_and_dollars_stay_literal_in_the_script(self, crontab_file, tmp_path):
        project = tmp_path / "it's $HOME `id`"
        (project / "configs").mkdir(parents=True)
        (project / "configs" / "c.yaml").write_text("parameters: {}\n")
        log = project / "p.log"
        install("--cron", "@hourly", "--name", "odd", "--project", str(project), "--config", "configs/c.yaml",
                "--pipeline", "pipelines.nothing", "--log", str(log))  # fmt: skip
        script = Path(os.environ["FERKIT_HOME"]) / "schedules" / "odd.sh"
        assert subprocess.run(["/bin/sh", "-n", str(script)], capture_output=True).returncode == 0
        subprocess.run(["/bin/sh", str(script)], timeout=300, env={"PATH": "/usr/bin:/bin"})
        text = log.read_text()
        assert f"ferkit schedule odd: pipelines.nothing -c {project}/configs/c.yaml" in text, text
        assert "ferkit schedule odd: exit" in text

    def test_a_malformed_cron_exits_2_with_the_reason(self, crontab_file, capsys):
        assert install("--cron", "0 25 * * *") == 2
        assert "hour: 25 is outside 0-23" in capsys.readouterr().err
        assert Crontab().jobs() == []

    def test_remove_takes_the_line_and_the_script(self, crontab_file, capsys):
        install("--cron", "@daily", "--name", "nightly")
        script = Path(os.environ["FERKIT_HOME"]) / "schedules" / "nightly.sh"
        assert script.is_file()
        assert main(["schedule", "remove", "nightly"]) == 0
        assert Crontab().jobs() == [] and "removed schedule 'nightly'" in capsys.readouterr().out
        assert not script.exists()

    def test_a_schedule_of_another_home_goes_with_its_own_script(self, crontab_file, tmp_path, monkeypatch, capsys):
        """One crontab serves every ferkit home: removing a name removes the line and the script that
        line runs, wherever it is, and says whose it was; the current home's files stay."""
        install("--cron", "@daily", "--name", "retrain")
        theirs = Path(os.environ["FERKIT_HOME"]) / "schedules" / "retrain.sh"
        monkeypatch.setenv("FERKIT_HOME", str(tmp_path / "other-home"))
        mine = tmp_path / "other-home" / "schedules" / "retrain.sh"
        mine.parent.mkdir(parents=True)
        mine.write_text("# a file of this home that no crontab line runs\n")
        assert install("--cron", "@hourly", "--name", "retrain") == 2  # the name is taken, crontab-wide
        assert "exists; remove it first" in capsys.readouterr().err
        assert main(["schedule", "remove", "retrain"]) == 0
        out = capsys.readouterr().out
        assert f"installed from the ferkit home {theirs.parent.parent}; its script removed" in out
        assert not theirs.exists() and mine.exists() and Crontab().jobs() == []
