"""The security health check's items, each judged from plain facts (no I/O here).

Each item is pass, warn or fail with a one-line detail that never holds a secret. The
score weighs the items: a pass counts its weight, a warn half, a fail nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata, resources
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from streamzy.clock import as_utc
from streamzy.config import Settings, production_checks

Status = Literal["pass", "warn", "fail"]
HSTS_MIN_SECONDS = 180 * 86400
SAFE_REFERRER = frozenset({"no-referrer", "same-origin", "strict-origin",
                           "strict-origin-when-cross-origin", "origin"})
VersionLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class HealthItem:
    name: str  # stable id, e.g. "served.cookies"
    title: str
    status: Status
    detail: str
    weight: int = 1


@dataclass(frozen=True)
class HealthReport:
    items: list[HealthItem]
    at: datetime

    @property
    def score(self) -> int:
        """Percent of the weighted items passing (a warn counts half)."""
        total = sum(item.weight for item in self.items)
        got = sum(item.weight * {"pass": 1.0, "warn": 0.5, "fail": 0.0}[item.status]
                  for item in self.items)
        return round(100 * got / total) if total else 0

    @property
    def failed(self) -> bool:
        return any(item.status == "fail" for item in self.items)

    def count(self, status: Status) -> int:
        return sum(1 for item in self.items if item.status == status)


def _bad(production: bool) -> Status:
    """What a weakness costs: a fail in production, a warn in development."""
    return "fail" if production else "warn"


# -- settings ----------------------------------------------------------------------------------
def settings_items(settings: Settings) -> list[HealthItem]:
    prod = settings.production
    checks = {check.name: check.ok for check in production_checks(settings)}
    items = []
    if settings.debug:
        items.append(HealthItem("settings.mode", "Mode", "fail", "debug is on", 2))
    elif prod:
        items.append(HealthItem("settings.mode", "Mode", "pass", "production, debug off", 2))
    else:
        items.append(HealthItem("settings.mode", "Mode", "warn",
                                "development mode: set STREAMZY_ENV=production", 2))
    weak = [name for name in ("STREAMZY_SECRET_KEY", "STREAMZY_PASSWORD_PEPPER",
                              "STREAMZY_MESSAGE_KEYS") if not checks[name]]
    items.append(HealthItem("settings.secrets", "Secrets and keys",
                            _bad(prod) if weak else "pass",
                            f"missing, weak or placeholder: {', '.join(weak)}" if weak
                            else "secret key, pepper and message keys set and strong", 3))
    items.append(HealthItem("settings.cookies", "Cookie settings",
                            "pass" if settings.cookie_secure else _bad(prod),
                            "STREAMZY_COOKIE_SECURE on: __Host- cookies, Secure"
                            if settings.cookie_secure else
                            "STREAMZY_COOKIE_SECURE is off: cookies may travel over plain HTTP",
                            2))
    hops = settings.trusted_hops
    items.append(HealthItem("settings.proxy", "Trusted proxy hops",
                            "pass" if hops <= 2 else "warn",
                            f"{hops} trusted hop(s)" + ("" if hops <= 2 else
                                                        ": more than a proxy chain usually has; "
                                                        "a client could pick its own address")))
    origins = settings.allowed_origins
    if any(o == "*" or "://" not in o for o in origins):
        origin_status, origin_detail = "fail", "a wildcard or malformed origin is allowed"
    elif not origins:
        origin_status = "warn" if prod else "pass"
        origin_detail = ("none listed: sockets accept only the origin the request names; "
                         "list the public origin (STREAMZY_ALLOWED_ORIGINS)")
    elif prod and any(o.startswith("http://") for o in origins):
        origin_status, origin_detail = "warn", "a plain http:// origin is allowed in production"
    else:
        origin_status, origin_detail = "pass", f"{len(origins)} exact origin(s)"
    items.append(HealthItem("settings.origins", "Allowed origins", origin_status,  # type: ignore[arg-type]
                            origin_detail))
    items.append(HealthItem("settings.passwords", "Password hashing",
                            "pass" if checks["STREAMZY_BCRYPT_ROUNDS"] else _bad(prod),
                            f"bcrypt cost {settings.bcrypt_rounds}" +
                            ("" if checks["STREAMZY_BCRYPT_ROUNDS"] else " (at least 12)")))
    items.append(HealthItem("settings.backup_key", "Backup key",
                            "pass" if settings.backup_key.get_secret_value() else "warn",
                            "set" if settings.backup_key.get_secret_value() else
                            "STREAMZY_BACKUP_KEY is not set: `streamzy backup` refuses to run"))
    return items


# -- cookies and headers as served --------------------------------------------------------------
@dataclass(frozen=True)
class Served:
    """One response as a client received it: status, headers (names lower case)."""

    url: str
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def first(self, name: str) -> str:
        found = self.values(name)
        return found[0] if found else ""


def _cookie_problems(line: str, secure_expected: bool) -> tuple[str, list[str]]:
    parts = [part.strip() for part in line.split(";")]
    name = parts[0].split("=", 1)[0]
    attributes: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        attributes[key.strip().lower()] = value.strip()
    problems = []
    if "httponly" not in attributes:
        problems.append("not HttpOnly")
    samesite = attributes.get("samesite", "").lower()
    if samesite not in ("lax", "strict"):
        problems.append(f"SameSite={samesite or 'missing'}")
    if secure_expected:
        if "secure" not in attributes:
            problems.append("not Secure")
        if not name.startswith("__Host-"):
            problems.append("no __Host- prefix")
    return name, problems


def served_items(served: Served | None, settings: Settings, problem: str = "") -> list[HealthItem]:
    """Cookies and headers of a sign-in page as served."""
    if served is None:
        why = problem or "not checked"
        return [HealthItem("served.cookies", "Cookies as served", "warn",
                           f"could not fetch the sign-in page: {why}", 3),
                HealthItem("served.headers", "Headers as served", "warn",
                           f"could not fetch the sign-in page: {why}", 3)]
    https = served.url.startswith("https://")
    secure_expected = settings.production or https or settings.cookie_secure
    cookies = served.values("set-cookie")
    cookie_problems = []
    for line in cookies:
        name, problems = _cookie_problems(line, secure_expected)
        cookie_problems += [f"{name}: {p}" for p in problems]
    if cookie_problems:
        cookie_item = HealthItem("served.cookies", "Cookies as served", "fail",
                                 "; ".join(cookie_problems)[:400], 3)
    elif not cookies:
        cookie_item = HealthItem("served.cookies", "Cookies as served", "warn",
                                 f"{served.url} set no cookie to inspect", 3)
    else:
        cookie_item = HealthItem("served.cookies", "Cookies as served", "pass",
                                 f"{len(cookies)} cookie(s): HttpOnly, SameSite"
                                 + (", Secure, __Host-" if secure_expected else
                                    " (Secure not expected over plain HTTP in development)"), 3)
    return [cookie_item, _headers_item(served, settings, https)]


def _headers_item(served: Served, settings: Settings, https: bool) -> HealthItem:
    missing, weak = [], []
    csp = served.first("content-security-policy")
    if not csp:
        missing.append("Content-Security-Policy")
    else:
        directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
        script = directives.get("script-src", directives.get("default-src", ""))
        if not script or "'unsafe-inline'" in script or "*" in script.split():
            weak.append("CSP allows inline or any script")
    xfo = served.first("x-frame-options").upper()
    if xfo not in ("DENY", "SAMEORIGIN") and "frame-ancestors" not in csp:
        missing.append("X-Frame-Options or frame-ancestors")
    if served.first("x-content-type-options").lower() != "nosniff":
        missing.append("X-Content-Type-Options: nosniff")
    referrer = served.first("referrer-policy").lower()
    if not referrer:
        missing.append("Referrer-Policy")
    elif not set(r.strip() for r in referrer.split(",")) & SAFE_REFERRER:
        weak.append(f"Referrer-Policy {referrer}")
    hsts = served.first("strict-transport-security")
    if https or settings.production:
        if not hsts:
            missing.append("Strict-Transport-Security")
        else:
            age = _max_age(hsts)
            if age < HSTS_MIN_SECONDS:
                weak.append(f"HSTS max-age {age} (want at least {HSTS_MIN_SECONDS})")
    if missing or weak:
        detail = "; ".join([*(f"missing {m}" for m in missing), *weak])
        return HealthItem("served.headers", "Headers as served", "fail", detail[:400], 3)
    return HealthItem("served.headers", "Headers as served", "pass",
                      "CSP, frame protection, nosniff, Referrer-Policy"
                      + (", HSTS" if hsts else " (HSTS not expected over plain HTTP)"), 3)


def _max_age(hsts: str) -> int:
    for part in hsts.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "max-age":
            try:
                return int(value.strip().strip('"'))
            except ValueError:
                return 0
    return 0


# -- keys, second factors, backups, audit chain -------------------------------------------------
def unwrap_item(unusable: int | None) -> HealthItem:
    if unusable is None:
        return HealthItem("keys.unwrap", "Room keys unwrap", "warn", "not checked yet", 3)
    if unusable:
        return HealthItem("keys.unwrap", "Room keys unwrap", "fail",
                          f"{unusable} room(s) hold a key no configured master key unwraps", 3)
    return HealthItem("keys.unwrap", "Room keys unwrap", "pass",
                      "every live room key unwraps with the configured master keys", 3)


def key_age_item(oldest_days: float | None, max_days: int, rotated: str | None) -> HealthItem:
    last = f"; last rotation finished {rotated[:10]}" if rotated else "; never rotated"
    if oldest_days is None:
        return HealthItem("keys.age", "Key age", "pass", "no room keys yet")
    days = int(oldest_days)
    if days > max_days:
        return HealthItem("keys.age", "Key age", "warn",
                          f"the oldest room key in use is {days} days old (more than "
                          f"{max_days}): streamzy rotate-keys --data-keys{last}")
    return HealthItem("keys.age", "Key age", "pass",
                      f"the oldest room key in use is {days} days old (limit {max_days}){last}")


def second_factor_item(admins: int, admins_with: int, users: int, users_with: int,
                       policy: str) -> HealthItem:
    """Fail when an admin has no second factor and the policy does not make them enrol;
    warn when the policy will (they enrol at their next sign-in) or there is no admin."""
    coverage = (f"admins {admins_with}/{admins}, active accounts {users_with}/{users} "
                f"with a second factor; policy {policy}")
    missing = admins - admins_with
    if admins == 0:
        return HealthItem("second_factor.admins", "Second factor for admins", "warn",
                          f"no active admin; {coverage}", 2)
    if not missing:
        return HealthItem("second_factor.admins", "Second factor for admins", "pass",
                          coverage, 2)
    if policy in ("admins", "everyone"):
        return HealthItem("second_factor.admins", "Second factor for admins", "warn",
                          f"{missing} admin(s) still to enrol (the policy makes them at their "
                          f"next sign-in); {coverage}", 2)
    return HealthItem("second_factor.admins", "Second factor for admins", "fail",
                      f"{missing} admin(s) without a second factor and the policy does not "
                      f"require one; {coverage}", 2)


def backup_item(state: dict[str, Any] | None, now: datetime, max_hours: int) -> HealthItem:
    name = "backup"
    if state is None:
        return HealthItem(name, "Last verified backup", "fail",
                          "no verified backup recorded (streamzy backup FILE --verify)", 2)
    try:
        at = as_utc(datetime.fromisoformat(str(state["at"])))
    except (KeyError, ValueError):
        return HealthItem(name, "Last verified backup", "fail", "the record is unreadable", 2)
    hours = (now - at).total_seconds() / 3600
    if not state.get("ok"):
        return HealthItem(name, "Last verified backup", "fail",
                          f"the last backup verified ({at:%Y-%m-%d %H:%M} UTC) did NOT restore "
                          "cleanly", 2)
    if hours > max_hours:
        return HealthItem(name, "Last verified backup", "fail",
                          f"the last verified backup is {int(hours)} hours old (more than "
                          f"{max_hours})", 2)
    return HealthItem(name, "Last verified backup", "pass",
                      f"verified {int(hours)} hour(s) ago, {int(state.get('messages', 0))} "
                      "messages", 2)


def audit_item(state: dict[str, Any] | None, now: datetime, warn_days: int = 2) -> HealthItem:
    name = "audit_chain"
    if state is None:
        return HealthItem(name, "Audit chain", "warn",
                          "never verified (streamzy audit verify, or wait for the daily run)", 2)
    try:
        at = as_utc(datetime.fromisoformat(str(state["at"])))
    except (KeyError, ValueError):
        return HealthItem(name, "Audit chain", "warn", "the record is unreadable", 2)
    if not state.get("ok"):
        return HealthItem(name, "Audit chain", "fail",
                          f"BROKEN at row {state.get('first_bad')} ({state.get('kind') or '?'}), "
                          f"found {at:%Y-%m-%d %H:%M} UTC", 2)
    days = (now - at).total_seconds() / 86400
    if days > warn_days:
        return HealthItem(name, "Audit chain", "warn",
                          f"last verified {int(days)} days ago", 2)
    return HealthItem(name, "Audit chain", "pass",
                      f"intact: {state.get('rows', 0)} rows, verified "
                      f"{at:%Y-%m-%d %H:%M} UTC", 2)


# -- dependencies against the shipped list -------------------------------------------------------
def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def known_bad() -> dict[str, Any]:
    text = resources.files("streamzy.data").joinpath("known-bad-versions.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def dependency_hits(listing: dict[str, Any], lookup: VersionLookup) -> tuple[int, list[str]]:
    """(packages checked, "name version: advisory (note)" for each installed match)."""
    checked, hits = 0, []
    for package, entries in sorted(listing.get("packages", {}).items()):
        found = lookup(package)
        if found is None:
            continue
        checked += 1
        try:
            version = Version(found)
        except InvalidVersion:
            hits.append(f"{package} {found}: version not understood")
            continue
        for entry in entries:
            try:
                spec = SpecifierSet(entry["versions"])
            except (InvalidSpecifier, KeyError):
                continue
            if spec.contains(version, prereleases=True):
                hits.append(f"{canonicalize_name(package)} {found}: {entry.get('advisory', '?')}"
                            f" ({entry.get('note', '')})")
    return checked, hits


def dependency_item(lookup: VersionLookup = installed_version,
                    listing: dict[str, Any] | None = None) -> HealthItem:
    listing = listing if listing is not None else known_bad()
    checked, hits = dependency_hits(listing, lookup)
    advisories = sum(len(v) for v in listing.get("packages", {}).values())
    if hits:
        return HealthItem("dependencies", "Dependency versions", "fail",
                          "; ".join(hits)[:600], 2)
    return HealthItem("dependencies", "Dependency versions", "pass",
                      f"{checked} package(s) clear of {advisories} known advisories "
                      f"(list of {listing.get('updated', '?')}; run pip-audit for the latest)", 2)


def failed_item(name: str, title: str, exc: BaseException, weight: int = 1) -> HealthItem:
    """An item whose facts could not be read (the database is away): a warn, not a crash."""
    return HealthItem(name, title, "warn", f"could not be checked ({type(exc).__name__})", weight)


def by_name(items: Iterable[HealthItem]) -> dict[str, HealthItem]:
    return {item.name: item for item in items}
