# ruff: noqa
# Code that every rule of .semgrep/streamzy.yml must flag (tests/test_static_checks.py).
# Never imported; each flagged line ends with "# expect: <rule id>".
import asyncio
import os
import subprocess

import markupsafe
import quart_rate_limiter
from sqlalchemy import text


def sql(n, name):
    text(f"SELECT * FROM t WHERE id = {n}")  # expect: sql-text-built-from-strings
    text("SELECT * FROM t WHERE name = '" + name + "'")  # expect: sql-text-built-from-strings
    text("SELECT * FROM t WHERE id = %s" % n)  # expect: sql-text-built-from-strings
    text("SELECT * FROM t WHERE id = {}".format(n))  # expect: sql-text-built-from-strings
    text("SELECT * FROM t "  # expect: sql-text-built-from-strings
         f"WHERE id = {n}")
    text("SELECT * FROM t WHERE id = :n")  # bound: fine


def markup(user_text):
    return markupsafe.Markup(user_text)  # expect: markup-marks-text-safe


def shell(arg):
    subprocess.run(f"ls {arg}", shell=True)  # expect: no-shell
    os.system("ls " + arg)  # expect: no-shell
    asyncio.create_subprocess_shell("ls")  # expect: no-shell
    subprocess.run(["ls", arg])  # an argument list: fine


def compare(token, given, csrf_token, Session):
    if token == given:  # expect: secret-compared-without-hmac
        pass
    if given != csrf_token:  # expect: secret-compared-without-hmac
        pass
    if Session.token_hash == given:  # a column expression (SQL): fine
        pass
    if token_id == 3:  # an id, not a secret: fine
        pass


def limits(app):
    quart_rate_limiter.RateLimiter(app)  # expect: rate-limit-key-implicit


def addresses(request):
    return request.headers.get("X-Forwarded-For", "")  # expect: forwarded-header-read
