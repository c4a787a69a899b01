"""ferkit promote | rollback | versions: the `champion` alias by hand, and the version table."""

from __future__ import annotations

import argparse
import json

from ferkit.registry.names import REGISTERED_MODEL_NAME


def add_commands(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("promote", help="make a registered version the champion")
    pr.add_argument("version", help="the registered version number to make champion")
    pr.add_argument("--name", default=REGISTERED_MODEL_NAME, help="registered model name")
    pr.add_argument("--reason", default="promoted by hand", help="kept as the version's promotion.reason tag")
    pr.set_defaults(func=_promote)
    vs = sub.add_parser(
        "versions", help="the registered versions: aliases, val and test scores, decision, weights hash"
    )
    vs.add_argument("--name", default=REGISTERED_MODEL_NAME, help="registered model name")
    vs.add_argument("--metric", help="figure to show, e.g. accuracy (default: each version's gate metric)")
    vs.add_argument("--json", action="store_true", help="print JSON")
    vs.set_defaults(func=_versions)
    rb = sub.add_parser("rollback", help="give the champion alias back to the previous champion")
    rb.add_argument("--name", default=REGISTERED_MODEL_NAME, help="registered model name")
    rb.set_defaults(func=_rollback)


def _promote(args: argparse.Namespace) -> int:
    from ferkit.registry import promotion
    from ferkit.registry.names import PREVIOUS
    from ferkit.registry.store import use_stack_tracking

    use_stack_tracking()
    old = promotion.promote(args.name, str(args.version), reason=args.reason)
    was = f" (was v{old.version}, now '{PREVIOUS}')" if old else ""
    print(f"{args.name} v{args.version} is now the champion{was}")
    return 0


def _versions(args: argparse.Namespace) -> int:
    from ferkit.registry import promotion
    from ferkit.registry.store import use_stack_tracking

    use_stack_tracking()
    rows = promotion.list_versions(args.name, args.metric)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    compared = [{**row["comparison"], "version": row["version"]} for row in rows if row["comparison"]]
    if compared:  # versions in a backbone comparison's table: that table, one line per version
        from ferkit.comparison import format_table

        print(format_table(compared, extra=[("comparison", "comparison", "{}"), ("version", "version", "{}")]))
        rows = [row for row in rows if not row["comparison"]]
        if not rows:
            return 0
        print(f"\n{len(rows)} version(s) in no comparison's table:")
    header = f"{'version':>7}  {'aliases':<28} {'val':>8} {'test':>8}  {'metric':<26} {'decision':<10} {'weights':<12}"
    print(f"{header} created")
    for row in rows:
        val, test = ("-" if row[k] is None else f"{row[k]:.4f}" for k in ("score", "test_score"))
        print(
            f"{row['version']:>7}  {','.join(row['aliases']) or '-':<28} {val:>8} {test:>8}  {row['metric']:<26} "
            f"{row['decision'] or '-':<10} {row['weights_sha256'][:12] or '-':<12} {row['created']}"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from ferkit.registry import promotion
    from ferkit.registry.store import use_stack_tracking

    use_stack_tracking()
    demoted, restored = promotion.rollback(args.name)
    print(f"{args.name}: champion rolled back from v{demoted} to v{restored}")
    return 0
