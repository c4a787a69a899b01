"""Retraining on a schedule where the orchestrator cannot: cron expressions and a managed crontab."""

from ferkit.scheduling.crontab import CronError, CronJob, Crontab, validate_cron
from ferkit.scheduling.jobs import PipelineJob, pipeline_job

__all__ = ["CronError", "CronJob", "Crontab", "PipelineJob", "pipeline_job", "validate_cron"]
