"""The crontab job that runs a pipeline of this project: its environment, log and checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from ferkit.scheduling.crontab import CronError, CronJob, job_command, validate_cron


def pipeline_job(
    name: str,
    cron: str,
    pipeline: str,
    config: str | Path,
    project: str | Path = ".",
    log: str | Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[CronJob, Path]:
    """A job that runs `pipeline` with `config` from `project` on `cron`, and its log file.

    The job carries the project's ZenML home, resume folder and data path, since cron
    starts it with an almost empty environment.
    """
    cron = validate_cron(cron)
    project = Path(project).resolve()
    config = (project / config).resolve()
    if not config.is_file():
        raise CronError(f"config {config} does not exist")
    if "schedule" in (yaml.safe_load(config.read_text()) or {}):
        raise CronError(
            f"config {config} has a `schedule:`, which ZenML's local orchestrator cannot run; "
            "cron runs the pipeline at the times you give, so use a config without one "
            "(configs/retraining.yaml rather than configs/schedule.yaml)"
        )
    env = {
        "ZENML_CONFIG_PATH": environ.get("ZENML_CONFIG_PATH", str(project / ".ferkit" / "zenml")),
        "FERKIT_RESUME_DIR": str(project / ".ferkit" / "resume"),
        "FERKIT_NO_PROGRESS": "1",
        "FERKIT_CONFIG_FILE": str(config),
        "PYTHONPATH": str(project),
    }
    if environ.get("FER2013_PATH"):
        env["FER2013_PATH"] = str(Path(environ["FER2013_PATH"]).resolve())
    log_file = Path(log).resolve() if log else project / ".ferkit" / "logs" / f"{name}.log"
    return CronJob(name, cron, job_command(project, pipeline, config, log_file, env)), log_file
