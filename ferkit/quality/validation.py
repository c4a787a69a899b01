"""The quality gate: great-expectations 1.x on the ingest manifest, and the policy that follows.

GE runs in an ephemeral context (nothing written to disk); ZenML's own GE
integration only supports GE < 1.0, so the validate step calls this directly.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS, SPLITS
from ferkit.data.manifest import MANIFEST_COLUMNS
from ferkit.quality.checks import CHECKS, QualityPolicy, class_table, flag_images, quality_summary, split_table


class DataQualityError(RuntimeError):
    """The gate stopped the run; the message names the failed checks and what to do."""


class CheckResult(BaseModel):
    name: str  # one of CHECKS
    description: str  # what the check asserts
    passed: bool
    action: Literal["stop", "warn", "none"]  # what a failure does under the policy ("none" if passed)
    unexpected_count: int = 0  # rows (images, classes or splits) that broke it
    examples: list[str] = Field(default_factory=list)  # ids of those rows, at most policy.max_examples
    expectations: list[str] = Field(default_factory=list)  # the GE expectation types behind it


class ValidationReport(BaseModel):
    """Typed outcome of the gate: one entry per check, headline counts, the policy and its actions."""

    passed: bool  # no check listed in policy.fail_on failed
    checks: list[CheckResult]
    summary: dict[str, Any]
    policy: QualityPolicy
    actions: dict[str, int] = Field(default_factory=dict)  # what apply_policy removed, per reason

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def stop_message(self) -> str:
        stops = [c for c in self.failed if c.action == "stop"]
        lines = [f"data quality gate stopped the run: {len(stops)} check(s) failed"]
        for c in stops:
            shown = ", ".join(c.examples[:5])
            lines.append(f"  - {c.name}: {c.description}; {c.unexpected_count} offending row(s): {shown}")
        lines.append(
            "Fix the data, or move these checks out of `fail_on` in the validate step's policy "
            "to let them warn instead (see README, 'Data quality')."
        )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        s = self.summary
        lines = [
            "# Data quality report",
            "",
            f"**{'PASSED' if self.passed else 'STOPPED'}**: {sum(c.passed for c in self.checks)} of "
            f"{len(self.checks)} checks passed; stop on: {', '.join(self.policy.fail_on) or 'nothing'}.",
            "",
            "| check | result | offending rows | examples |",
            "|---|---|---:|---|",
        ]
        for c in self.checks:
            result = "pass" if c.passed else ("**STOP**" if c.action == "stop" else "warn")
            lines.append(f"| `{c.name}` | {result} | {c.unexpected_count} | {', '.join(c.examples[:3])} |")
        lines += [
            "",
            "## Counts",
            "",
            f"- images: {s['images']}",
            f"- duplicate groups: {s['duplicate_groups']} ({s['files_in_duplicate_groups']} files)",
            f"- val / test images with a pixel-identical train copy: "
            f"{s['val_images_with_train_copy']} / {s['test_images_with_train_copy']}",
            f"- label-conflict groups: {s['label_conflict_groups']} ({s['files_in_label_conflicts']} files)",
            f"- near-blank images: {s['blank_images']}",
            f"- converted to 48x48 grayscale: {s['converted_images']}",
            "",
            "| split | " + " | ".join(EMOTIONS) + " |",
            "|---|" + "---:|" * len(EMOTIONS),
        ]
        for split in SPLITS:
            counts = s["class_counts"][split]
            lines.append(f"| {split} | " + " | ".join(str(counts[e]) for e in EMOTIONS) + " |")
        if self.actions:
            lines += ["", "## Policy actions", ""] + [
                f"- {k}: {v} image(s) removed from train" for k, v in self.actions.items()
            ]
        return "\n".join(lines) + "\n"


def _validate(
    context: Any, table: str, frame: pd.DataFrame, index_column: str, groups: dict[str, list]
) -> tuple[dict[str, list], dict]:
    """Validate one DataFrame against check-name -> expectations; returns results per check and GE's JSON."""
    import great_expectations as gx

    suite = context.suites.add(gx.ExpectationSuite(name=table))
    # A suite registered with the context gives each expectation the id its result will carry.
    added = {name: [suite.add_expectation(e).id for e in group] for name, group in groups.items()}
    source = context.data_sources.add_pandas(f"{table}_source")
    batch = (
        source.add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [index_column]}
    )
    by_id = {r.expectation_config.id: r for r in result.results}  # GE reorders results
    return {name: [by_id[i] for i in ids] for name, ids in added.items()}, result.to_json_dict()


def _expectations(policy: QualityPolicy) -> tuple[dict[str, list], dict[str, list], dict[str, list]]:
    """Check name -> great-expectations expectations, for the manifest, split and class tables."""
    from great_expectations import expectations as gxe

    tol = policy.proportion_tolerance
    on_manifest = {
        "schema": [
            gxe.ExpectTableColumnsToMatchSet(column_set=list(MANIFEST_COLUMNS), exact_match=False),
            gxe.ExpectColumnValuesToBeInTypeList(column="pixel_mean", type_list=["float32", "float64"]),
            gxe.ExpectColumnValuesToBeInTypeList(column="pixel_std", type_list=["float32", "float64"]),
            gxe.ExpectColumnValuesToBeInTypeList(column="width", type_list=["int32", "int64"]),
            gxe.ExpectColumnValuesToBeInTypeList(column="height", type_list=["int32", "int64"]),
            gxe.ExpectColumnValuesToNotBeNull(column="pixel_hash"),
        ],
        "labels_known": [gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(EMOTIONS))],
        "images_48x48_gray": [gxe.ExpectColumnValuesToBeInSet(column="wrong_format", value_set=[False])],
        "no_blank_images": [
            gxe.ExpectColumnValuesToBeBetween(column="pixel_std", min_value=policy.blank_std_threshold)
        ],
        "no_duplicates_within_split": [gxe.ExpectCompoundColumnsToBeUnique(column_list=["split", "pixel_hash"])],
        "no_train_eval_leakage": [gxe.ExpectColumnValuesToBeInSet(column="has_train_copy", value_set=[False])],
        "no_label_conflicts": [gxe.ExpectColumnValuesToBeInSet(column="label_conflict", value_set=[False])],
    }
    on_splits = {"splits_present": [gxe.ExpectColumnValuesToBeBetween(column="images", min_value=1)]}
    on_classes = {
        "train_classes_present": [gxe.ExpectColumnValuesToBeBetween(column="train_count", min_value=1)],
        "class_proportions_match": [
            gxe.ExpectColumnValuesToBeBetween(column="val_gap", max_value=tol),
            gxe.ExpectColumnValuesToBeBetween(column="test_gap", max_value=tol),
        ],
    }
    return on_manifest, on_splits, on_classes


def run_expectations(manifest: pd.DataFrame, policy: QualityPolicy) -> tuple[ValidationReport, dict]:
    """Validate a manifest with great-expectations; returns the report and GE's JSON results."""
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise DataQualityError(f"manifest is missing columns {missing}; expected {list(MANIFEST_COLUMNS)}")

    # GE logs its API registry at INFO while importing; quiet it first.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    flags = flag_images(manifest, policy.blank_std_threshold)
    splits, classes = split_table(flags), class_table(flags)
    on_manifest, on_splits, on_classes = _expectations(policy)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    ge_json: dict[str, Any] = {}
    outcomes: dict[str, CheckResult] = {}
    gx_frame = flags.drop(columns=["dup_group"])
    for table, frame, index_column, groups in (
        ("manifest", gx_frame, "id", on_manifest),
        ("splits", splits, "split", on_splits),
        ("classes", classes, "label", on_classes),
    ):
        results, ge_json[table] = _validate(context, table, frame, index_column, groups)
        for name, check_results in results.items():
            outcomes[name] = _check_result(name, check_results, index_column, policy)

    checks = [outcomes[name] for name in CHECKS]
    report = ValidationReport(
        passed=not any(c.action == "stop" for c in checks), checks=checks, summary=quality_summary(flags), policy=policy
    )
    return report, json.loads(json.dumps(ge_json, default=_json_default))


def _check_result(name: str, results: list, index_column: str, policy: QualityPolicy) -> CheckResult:
    passed = all(r.success for r in results)
    offending: list[str] = []
    count = 0
    for r in results:
        if r.success:
            continue
        count += int(r.result.get("unexpected_count") or 0)
        for row in r.result.get("unexpected_index_list") or []:
            value = str(row.get(index_column)) if isinstance(row, dict) else str(row)
            if value not in offending:
                offending.append(value)
        if r.exception_info and r.exception_info.get("raised_exception"):
            offending.append(f"error: {r.exception_info.get('exception_message')}")
    if not passed and count == 0:
        count = max(len(offending), 1)
    action = "none" if passed else ("stop" if name in policy.fail_on else "warn")
    return CheckResult(
        name=name,
        description=CHECKS[name],
        passed=passed,
        action=action,
        unexpected_count=count,
        examples=offending[: policy.max_examples],
        expectations=[r.expectation_config.type for r in results],
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return str(value)


def apply_policy(data: FERDataset, manifest: pd.DataFrame, report: ValidationReport) -> FERDataset:
    """Remove what the policy says from train (never from val or test); record counts in `report.actions`."""
    policy = report.policy
    if len(manifest) != len(data) or not np.array_equal(manifest["id"].to_numpy(str), data.source_ids):
        raise ValueError("the manifest does not describe this data set (ids differ); re-run ingest")
    flags = flag_images(manifest, policy.blank_std_threshold)
    drop = np.zeros(len(data), dtype=bool)
    if policy.dedupe == "drop_from_train":
        dedupe = flags["train_copy_of_eval"].to_numpy()
        report.actions["train_copies_of_eval_images"] = int(dedupe.sum())
        drop |= dedupe
    if policy.drop_blank:
        blank = (flags["blank"] & (flags["split"] == "train")).to_numpy()
        report.actions["blank_train_images"] = int(blank.sum())
        drop |= blank
    return data.subset(~drop) if drop.any() else data
