"""ferkit stack-remote | cluster-config: the Kubernetes or Kubeflow stack, and run configs for it."""

from __future__ import annotations

import argparse
import sys

from ferkit.cluster import TARGETS


def add_commands(sub: argparse._SubParsersAction) -> None:
    sr = sub.add_parser("stack-remote", help="register the Kubernetes or Kubeflow stack of configs/stacks/")
    sr.add_argument("target", choices=TARGETS, help="the orchestrator of the stack")
    sr.add_argument("--root", default=".", help="repository root (where configs/ is)")
    sr.add_argument("--dry-run", action="store_true", help="validate and print the zenml commands, register nothing")
    sr.set_defaults(func=_stack_remote)
    cc = sub.add_parser("cluster-config", help="merge configs/cluster/<target>.yaml over a run config")
    cc.add_argument("config", help="run config, e.g. configs/paper.yaml or configs/schedule.yaml")
    cc.add_argument("--target", required=True, choices=TARGETS, help="the cluster overlay to merge")
    cc.add_argument("--pipeline", default="pipelines.fer_training", help="the pipeline the config is for")
    cc.add_argument("--root", default=".", help="repository root (where configs/ is)")
    cc.add_argument("-o", "--out", help="write here (default: print)")
    cc.set_defaults(func=_cluster_config)


def _stack_remote(args: argparse.Namespace) -> int:
    import shlex

    from ferkit.cluster import ClusterConfigError, register_stack, registration_commands, stack_definition

    try:
        definition = stack_definition(args.target, args.root)
        if args.dry_run:
            print(f"# integrations: zenml integration install -y {' '.join(definition.get('integrations', []))}")
            for command in registration_commands(definition):
                print(shlex.join(command))
            return 0
        register_stack(definition)
    except ClusterConfigError as exc:
        print(f"ferkit stack-remote: {exc}", file=sys.stderr)
        return 2
    print(f"registered and activated stack {definition['name']}")
    return 0


def _cluster_config(args: argparse.Namespace) -> int:
    import yaml

    from ferkit.cli.errors import read_yaml
    from ferkit.cluster import ClusterConfigError, cluster_run_config, pipeline_step_names
    from ferkit.files import atomic_write_text

    base = read_yaml(args.config)
    try:
        names = pipeline_step_names(args.pipeline, base.get("parameters") or {})
        merged = cluster_run_config(args.config, args.target, args.root, names)
    except ClusterConfigError as exc:
        print(f"ferkit cluster-config: {exc}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(merged, sort_keys=False)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out} ({args.config} + configs/cluster/{args.target}.yaml)")
    else:
        print(text)
    return 0
