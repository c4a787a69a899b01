"""The crontab job that runs a pipeline of this project: a small script per schedule.

The crontab line only names the script (`<home>/schedules/<name>.sh`); the script
exports the project's environment (cron starts jobs with almost none), changes to
the project and appends the run's output, between two dated lines, to the log. A
start while the schedule's last run still goes is skipped (a line in the log says so).
Every path and value that enters the script or the line is checked for characters
that would split a crontab line.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ferkit.files import atomic_write_text
from ferkit.home import ferkit_home, zenml_config_path
from ferkit.scheduling.crontab import NAME_PATTERN, CronError, CronJob, refuse_control_characters, validate_cron


@dataclass(frozen=True)
class PipelineJob:
    """A schedule's crontab job, the script it runs and the script's text."""

    job: CronJob
    script: Path
    text: str
    log: Path

    def write_script(self) -> None:
        atomic_write_text(self.script, self.text)
        self.script.chmod(0o755)


def _environment(project: Path, config: Path, environ: Mapping[str, str]) -> dict[str, str]:
    home = ferkit_home(environ)
    env = {
        "FERKIT_HOME": str(home),
        "ZENML_CONFIG_PATH": str(zenml_config_path(environ)),
        "FERKIT_RESUME_DIR": str(home / "resume"),
        "FERKIT_NO_PROGRESS": "1",
        "FERKIT_CONFIG_FILE": str(config),
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    if environ.get("FER2013_PATH"):
        env["FER2013_PATH"] = str(Path(environ["FER2013_PATH"]).resolve())
    return env


def script_text(
    name: str, project: Path, zenml: Path, pipeline: str, config: Path, log: Path, env: dict[str, str], lock: Path
) -> str:
    """A POSIX shell script that runs the pipeline and appends its output to `log`, one run at a time
    (where `flock` exists: Linux; elsewhere runs may overlap)."""
    q = shlex.quote
    exports = "\n".join(f"export {key}={q(value)}" for key, value in sorted(env.items()))
    when = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    said = f'echo "== {when} ferkit schedule {name}:'  # the name is letters, digits, '.', '_', '-'
    return f"""#!/bin/sh
# ferkit schedule {name}: written by `ferkit schedule install`; removed by `ferkit schedule remove {name}`.
{exports}
cd {q(str(project))} || exit 1
mkdir -p {q(str(log.parent))}
# One run of this schedule at a time: a start while the last run still goes is skipped and logged.
# The lock is the kernel's (flock, util-linux): it ends with the run, however the run ends. The
# shell holds it; the pipeline runs without it (9>&-), so nothing the run leaves behind keeps it.
if ! command exec 9>>{q(str(lock))}; then
  {said} cannot open the lock file" {q(str(lock))} >> {q(str(log))}
  exit 1
fi 2>/dev/null
if command -v flock >/dev/null 2>&1; then
  flock -n -E 75 9
  status=$?
  if [ "$status" -eq 75 ]; then
    {said} skipped, its last run is still going" >> {q(str(log))}
    exit 0
  elif [ "$status" -ne 0 ]; then
    {said} cannot take the lock" {q(str(lock))} "(flock exit $status)" >> {q(str(log))}
    exit 1
  fi
fi
{{
  {said}" {q(pipeline)} -c {q(str(config))}
  {q(str(zenml))} pipeline run {q(pipeline)} -c {q(str(config))} 9>&-
  status=$?
  {said} exit $status"
}} >> {q(str(log))} 2>&1
"""


def lock_path(script: Path) -> Path:
    """The file a schedule's script locks while its run goes (beside the script)."""
    return script.with_suffix(".lock")


def pipeline_job(
    name: str,
    cron: str,
    pipeline: str,
    config: str | Path,
    project: str | Path = ".",
    log: str | Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> PipelineJob:
    """The job that runs `pipeline` with `config` from `project` on `cron`; nothing is written yet."""
    if not NAME_PATTERN.match(name):
        raise CronError(f"schedule name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    cron = validate_cron(cron)
    project = Path(refuse_control_characters(str(project), "project folder")).resolve()
    config = (project / refuse_control_characters(str(config), "config")).resolve()
    if not config.is_file():
        raise FileNotFoundError(f"config {config} does not exist")
    if "schedule" in (yaml.safe_load(config.read_text()) or {}):
        raise CronError(
            f"config {config} has a `schedule:`, which ZenML's local orchestrator cannot run; "
            "cron runs the pipeline at the times you give, so use a config without one "
            "(configs/retraining.yaml rather than configs/schedule.yaml)"
        )
    env = _environment(project, config, environ)
    for key, value in env.items():
        refuse_control_characters(value, f"environment value {key}")
    home = Path(env["FERKIT_HOME"])
    log_file = Path(refuse_control_characters(str(log), "log file")).resolve() if log else home / "logs" / f"{name}.log"
    script = home / "schedules" / f"{name}.sh"
    refuse_control_characters(str(script), "script path")
    zenml = Path(sys.executable).parent / "zenml"
    pipeline = refuse_control_characters(pipeline, "pipeline")
    text = script_text(name, project, zenml, pipeline, config, log_file, env, lock_path(script))
    return PipelineJob(CronJob(name, cron, shlex.quote(str(script))), script, text, log_file)
