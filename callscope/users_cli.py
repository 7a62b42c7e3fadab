"""`callscope users add|remove|set-role|list|passwd`: the built-in user store, on the store file.

The store is opened directly, so the server must be stopped (DuckDB allows one writing process); while it runs,
admins use the API (/api/v1/access/users) or the dashboard's Access page. Passwords are read from the terminal
(no echo) or, with --password-stdin, from standard input: never from the command line, which every user of the
machine can read. The changes are audited as made by `cli:<login name>`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from core import users
from core.access import ALL, Principal, Role
from core.settings import Settings
from core.store import StoreLockedError, connect


def _actor() -> Principal:
    try:
        login = getpass.getuser()
    except Exception:  # no login name in a container: the uid
        login = str(os.getuid())
    return Principal(f"cli:{login}", "cli", {ALL: Role.admin})


def _password(args: argparse.Namespace) -> str | None:
    if getattr(args, "oidc", False):
        return None
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise users.UserError("password: the two entries differ")
    return first


def add_arguments(users_parser: argparse.ArgumentParser, add_setting_flags) -> None:
    sub = users_parser.add_subparsers(dest="users_command", required=True)
    p = sub.add_parser("add", help="add a user with a role on one or more projects ('*': every project)")
    add_setting_flags(p)
    p.add_argument("name", help="user name (for OIDC users: the e-mail their identity provider reports)")
    p.add_argument("--role", required=True, choices=[r.name for r in Role])
    p.add_argument("--project", action="append", required=True, help="project (repeatable); '*' for every project")
    p.add_argument("--oidc", action="store_true", help="no password: the user signs in through OIDC only")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = sub.add_parser("remove", help="remove a user and end their sessions")
    add_setting_flags(p)
    p.add_argument("name")
    p = sub.add_parser("set-role", help="set a user's role on a project, or take it away (--role none)")
    add_setting_flags(p)
    p.add_argument("name")
    p.add_argument("--project", required=True, help="project; '*' for every project")
    p.add_argument("--role", required=True, choices=[*(r.name for r in Role), "none"])
    p = sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    add_setting_flags(p)
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = sub.add_parser("list", help="list users and their roles per project")
    add_setting_flags(p)


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        db = connect(settings.db_path)
    except StoreLockedError:
        print(
            "callscope users: the server is running and holds the store; stop it, or use the API "
            "(/api/v1/access/users) or the dashboard's Access page as an admin",
            file=sys.stderr,
        )
        return 2
    try:
        return _run(db, args)
    except users.UserError as exc:
        print(f"callscope users: {exc}", file=sys.stderr)
        return 2 if exc.status != 404 else 1
    finally:
        db.close()


def _run(db, args: argparse.Namespace) -> int:
    actor = _actor()
    command = args.users_command
    if command == "add":
        grants = {p: Role[args.role] for p in args.project}
        shown = users.add_user(db, actor, args.name, _password(args), grants)
    elif command == "remove":
        users.remove_user(db, actor, args.name)
        shown = {"removed": args.name}
    elif command == "set-role":
        role = None if args.role == "none" else Role[args.role]
        shown = users.set_role(db, actor, args.name, args.project, role)
    elif command == "passwd":
        users.set_password(db, actor, args.name, _password(args) or "")
        shown = {"password_set": args.name}
    else:
        cur = db.cursor()
        try:
            shown = {"users": users.list_users(cur)}
        finally:
            cur.close()
    print(json.dumps(shown, indent=2, default=str))
    return 0
