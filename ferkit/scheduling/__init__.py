"""Retraining on a schedule where the orchestrator cannot: cron expressions and a managed crontab."""

from ferkit.scheduling.crontab import (
    CronError,
    CronJob,
    Crontab,
    validate_cron,
)

__all__ = ["CronError", "CronJob", "Crontab", "validate_cron"]
