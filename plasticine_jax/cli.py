"""``plasticine-jax``: run experiments, resume them, report them, list what is available."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_run(args: argparse.Namespace) -> int:
    from plasticine_jax.config import ConfigError, load_config
    from plasticine_jax.runner import distributed
    from plasticine_jax.runner.loop import run
    from plasticine_jax.runner.summary import format_table

    try:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        if args.resume:
            if args.config or args.overrides:
                raise ConfigError(
                    "--resume takes no config file or overrides: it reuses the run's own"
                )
            result = run(resume=args.resume)
        else:
            if not args.config:
                raise ConfigError(
                    "give a config file, e.g. plasticine-jax run configs/quickstart.yaml"
                )
            result = run(load_config(args.config, args.overrides))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if not distributed.is_writer():
        print(f"process {args.process_id}: {result.status}; process 0 wrote {result.run_dir}")
        return 0
    print(format_table(result.summary))
    for note in result.notes:
        print(f"note: {note}")
    print(
        f"\n{result.status}: programs compiled {result.programs_compiled}; "
        f"run directory {result.run_dir}"
    )
    if result.status == "interrupted":
        if result.resumable:
            print(f"resume with: plasticine-jax run --resume {result.run_dir}")
        else:
            print("this run steps envpool and cannot be resumed exactly; its rows are kept")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from plasticine_jax.listing import listing

    print(listing())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from plasticine_jax.doctor import exit_code, format_checks, run_checks

    checks = run_checks()
    print(format_checks(checks))
    return exit_code(checks)


def _cmd_report(args: argparse.Namespace) -> int:
    from plasticine_jax.report import NotARunError, write_report

    try:
        path = write_report(args.run_dirs, args.out, baseline=args.baseline, fmt=args.format)
    except (NotARunError, ValueError) as e:
        print(f"report error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path} (report.md and report.json beside it)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plasticine-jax", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train; config file then key=value overrides")
    r.add_argument("config", nargs="?", help="experiment YAML (configs/*.yaml)")
    r.add_argument("overrides", nargs="*", help="dotted key=value, e.g. agent.hp.lr=3e-4")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run")
    mp = r.add_argument_group(
        "many processes", "one run over N processes (hosts), each started with the same "
        "config, overrides and --coordinator; process 0 writes the run directory"
    )
    mp.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    mp.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    mp.add_argument("--process-id", type=int, metavar="I", help="this process: 0 to N-1")
    r.set_defaults(fn=_cmd_run)
    ls = sub.add_parser("list", help="environments, agents, methods and metrics")
    ls.set_defaults(fn=_cmd_list)
    dr = sub.add_parser("doctor", help="check the install: jax pin, devices, extras, paths")
    dr.set_defaults(fn=_cmd_doctor)
    rp = sub.add_parser("report", help="aggregates with intervals and figures of run dirs")
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to compare")
    rp.add_argument("--out", metavar="DIR", help="default: RUN_DIR/report for one run")
    rp.add_argument(
        "--baseline",
        metavar="LABEL",
        help="setting to compare with (default: the vanilla setting with the same swept values)",
    )
    rp.add_argument("--format", choices=("svg", "png"), default="svg", help="figure files")
    rp.set_defaults(fn=_cmd_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
