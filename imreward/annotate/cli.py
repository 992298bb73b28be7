"""`imreward annotate ...` argument parsing; each command calls one function of `api`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from imreward.serve.connection_limits import ConnectionLimits, add_connection_arguments, connection_limits_from_args

PASSWORD_ENV = "IMREWARD_ANNOTATE_PASSWORD"
SECRET_ENV = "IMREWARD_ANNOTATE_SECRET"
# The reward server's, but 10 minutes for a body: a 512 MiB import upload at 0.9 MB/s.
CONNECTION_LIMITS = ConnectionLimits(body_timeout_s=600.0)


def register(subparsers) -> None:
    """Add the `annotate` command and its sub-commands to an argparse sub-parser set."""
    annotate = subparsers.add_parser("annotate", help="the annotation web platform")
    commands = annotate.add_subparsers(dest="annotate_command", required=True)
    db_help = "SQLAlchemy URL or SQLite file (default: ./imreward-annotate.db)"

    serve = commands.add_parser("serve", help="run the annotation web app")
    serve.add_argument("--db", help=db_help)
    serve.add_argument("--media", type=Path, required=True, help="media root holding the images")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--secure-cookies", action="store_true", help="send cookies over HTTPS only")
    serve.add_argument(
        "--forwarded-allow-ips",
        help="comma-separated addresses of reverse proxies whose X-Forwarded-For/-Proto to trust",
    )
    serve.add_argument("--max-import-mb", type=float, default=512, help="largest zip upload (default 512)")
    serve.add_argument("--max-unpacked-mb", type=float, default=2048, help="largest unpacked import (default 2048)")
    serve.add_argument("--session-hours", type=float, default=12, help="absolute session lifetime (default 12)")
    serve.add_argument("--idle-minutes", type=float, default=60, help="session idle timeout (default 60)")
    serve.add_argument(
        "--login-max-failures", type=int, default=5,
        help="wrong passwords per account and address within 5 minutes (default 5)",
    )
    add_connection_arguments(serve, CONNECTION_LIMITS)
    serve.set_defaults(handler=_serve)

    load = commands.add_parser("import", help="load prompts and their images")
    load.add_argument("source", type=Path, help="prompt folder, JSON/JSON-lines manifest or zip")
    load.add_argument("--db", help=db_help)
    load.add_argument("--media", type=Path, required=True)
    load.set_defaults(handler=_import)

    export = commands.add_parser("export", help="write the training JSON and ImageRewardDB layouts")
    export.add_argument("out", type=Path, help="output folder")
    export.add_argument("--db", help=db_help)
    export.add_argument("--media", type=Path, required=True)
    export.add_argument("--split", default="train", help="split name in the file names")
    export.set_defaults(handler=_export)

    user = commands.add_parser("create-user", help=f"add an account (password from ${PASSWORD_ENV} or a prompt)")
    user.add_argument("username")
    user.add_argument("--role", choices=("admin", "annotator"), default="annotator")
    user.add_argument("--db", help=db_help)
    user.set_defaults(handler=_create_user)

    password = commands.add_parser(
        "set-password", help=f"change a password and end its sessions (from ${PASSWORD_ENV} or a prompt)"
    )
    password.add_argument("username")
    password.add_argument("--db", help=db_help)
    password.set_defaults(handler=_set_password)


def _serve(args: argparse.Namespace) -> None:
    from .api import serve
    from .guard import BodyLimits
    from .importer import ImportLimits
    from .login_sessions import SessionPolicy
    from .login_throttle import LoginPolicy

    mib = 1024 * 1024
    try:
        connections = connection_limits_from_args(args)
    except ValueError as error:
        sys.exit(f"error: {error}")
    serve(
        args.db,
        args.media,
        args.host,
        args.port,
        args.secure_cookies,
        os.environ.get(SECRET_ENV),
        args.forwarded_allow_ips,
        connections=connections,
        login=LoginPolicy(max_failures=args.login_max_failures),
        sessions=SessionPolicy(lifetime_s=args.session_hours * 3600, idle_s=args.idle_minutes * 60),
        body_limits=BodyLimits(import_archive=int(args.max_import_mb * mib)),
        import_limits=ImportLimits(max_total_bytes=int(args.max_unpacked_mb * mib)),
    )


def _import(args: argparse.Namespace) -> None:
    from .api import import_data

    if not args.source.exists():
        sys.exit(f"error: {args.source} does not exist (give a prompt folder, a manifest or a zip)")
    try:
        report = import_data(args.db, args.media, args.source)
    except (ValueError, OSError) as error:  # InvalidSource is a ValueError
        sys.exit(f"error: cannot import {args.source}: {error}")
    print(f"imported {len(report.imported)} prompts, skipped {len(report.skipped_existing)} already present")


def _export(args: argparse.Namespace) -> None:
    from .api import export_data

    report = export_data(args.db, args.media, args.out, args.split)
    for problem in report.skipped:
        print(f"skipped prompt {problem}", file=sys.stderr)
    print(
        f"exported {report.exported_prompts} prompts ({report.images} images), "
        f"dropped {report.dropped_prompts}, skipped {len(report.skipped)}: "
        f"{report.training_json}, {report.metadata_parquet}"
    )


def _create_user(args: argparse.Namespace) -> None:
    from .api import add_user

    password = os.environ.get(PASSWORD_ENV) or getpass.getpass(f"Password for {args.username}: ")
    try:
        add_user(args.db, args.username, password, args.role)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(f"created {args.role} {args.username}")


def _set_password(args: argparse.Namespace) -> None:
    from .api import set_password

    password = os.environ.get(PASSWORD_ENV) or getpass.getpass(f"New password for {args.username}: ")
    try:
        set_password(args.db, args.username, password)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(f"changed the password of {args.username}; its sessions have ended")


def main(argv: list[str] | None = None) -> None:
    """Run the annotate commands alone: `python -m imreward.annotate.cli annotate ...`."""
    parser = argparse.ArgumentParser(prog="imreward")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
