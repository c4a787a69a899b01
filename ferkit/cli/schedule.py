"""ferkit schedule install | list | remove: retraining from this machine's crontab."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    sch = sub.add_parser("schedule", help="retrain on a cron schedule from this machine's crontab")
    sch_sub = sch.add_subparsers(dest="action", required=True)
    inst = sch_sub.add_parser("install", help="add a crontab line that runs a pipeline on a schedule")
    inst.add_argument("--cron", required=True, help='five-field cron expression, e.g. "0 3 * * 1", or @daily')
    inst.add_argument("--name", default="retrain", help="schedule name (the crontab line's marker)")
    inst.add_argument("--pipeline", default="fer_retraining", help="pipeline to run (its name, or pipelines.<name>)")
    inst.add_argument("--config", default="configs/retraining.yaml", help="its run config (without a `schedule:`)")
    inst.add_argument("--project", default=".", help="project folder the job runs in")
    inst.add_argument(
        "--log", help="log file (default $FERKIT_HOME/logs/<name>.log; FERKIT_HOME defaults to the checkout's .ferkit)"
    )
    inst.add_argument("--replace", action="store_true", help="replace a schedule of the same name")
    sch_sub.add_parser("list", help="ferkit's schedules in the crontab")
    rm = sch_sub.add_parser("remove", help="remove a schedule by name")
    rm.add_argument("name", help="the schedule's name (ferkit schedule list shows them)")
    sch.set_defaults(func=_schedule)


def _schedule(args: argparse.Namespace) -> int:
    from ferkit.scheduling import CronError, Crontab

    try:
        crontab = Crontab()
        if args.action == "list":
            return _list(crontab)
        if args.action == "remove":
            return _remove(crontab, args.name)
        return _install(crontab, args)
    except CronError as exc:
        print(f"ferkit schedule: {exc}", file=sys.stderr)
        return 2


def _install(crontab, args: argparse.Namespace) -> int:
    from ferkit.scheduling import pipeline_job

    planned = pipeline_job(args.name, args.cron, args.pipeline, args.config, args.project, args.log)
    crontab.install(planned.job, replace=args.replace, prepare=planned.write_script)
    print(
        f"installed schedule {args.name!r}: {planned.job.cron} (next {planned.job.next_run():%Y-%m-%d %H:%M}), "
        f"{args.pipeline} -c {args.config}, script {planned.script}, log {planned.log}"
    )
    return 0


def _list(crontab) -> int:
    jobs = crontab.jobs()
    if not jobs:
        print("no ferkit schedules installed")
    for job in jobs:
        print(f"{job.name}\t{job.cron}\tnext {job.next_run():%Y-%m-%d %H:%M}\t{job.command}")
    return 0


def _remove_lock(lock: Path) -> bool:
    """Delete a schedule's lock file unless a run holds it (a run installed again under the same
    name would otherwise lock a new file beside the running one); False when one does."""
    import fcntl

    try:
        with lock.open("a") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            lock.unlink()
    except FileNotFoundError:
        pass
    return True


def _remove(crontab, name: str) -> int:
    """The crontab line and the script it runs: the user's crontab is one for every ferkit home, so
    the script may be another home's; the message then says whose."""
    import shlex

    from ferkit.home import ferkit_home
    from ferkit.scheduling.jobs import lock_path

    job = crontab.remove(name)
    words = shlex.split(job.command)
    script = Path(words[0]) if len(words) == 1 else None
    where = ""
    if script is not None and script.name == f"{name}.sh" and script.parent.name == "schedules":
        script.unlink(missing_ok=True)  # only a script ferkit wrote for this schedule
        if not _remove_lock(lock_path(script)):
            print(f"schedule {name!r}: its last run still goes (removing the schedule does not stop it)")
        if script.parent.parent.resolve() != ferkit_home().resolve():
            where = f", installed from the ferkit home {script.parent.parent}; its script removed"
    print(f"removed schedule {job.name!r} ({job.cron}{where})")
    return 0
