"""Dashboard users: accounts, roles, client assignments, password login with lockout.

Passwords are hashed with argon2. Five failed logins from one source (client address, see
``login_source``) lock that source out of the account for fifteen minutes; other addresses
can still log in, so nobody can keep an account (the only admin's) locked by guessing
(OWASP Authentication Cheat Sheet, "Account Lockout":
https://cheatsheetseries.owasp.org/cheatsheets/Authentication_Cheat_Sheet.html#account-lockout).
The counters live in the database, so restarting the app does not lift a lock. A failed
login never says why (unknown user, wrong password, locked, disabled all read the same),
and every change is recorded in the audit log in the same transaction, without secrets.
A password reset, disabling an account and a role change end the user's sessions.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lib import audit, sessions
from lib.access import SYSTEM, Role, Viewer
from lib.models import LOGIN_SOURCE_MAX, NAME_MAX, Client, LoginThrottle, User, UserClient, utcnow
from lib.validation import ValidationError, clean_text, look_alikes, name_key, pick_by_name, same_names

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
EMAIL_MAX = 200
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
#: The one answer to every failed login, so it never tells whether an account exists.
LOGIN_FAILED_MESSAGE = (
    "Login failed: wrong username or password, or the account is locked or disabled. "
    f"After {MAX_FAILED_LOGINS} failed attempts an account is locked for {int(LOCKOUT.total_seconds() // 60)} minutes "
    "from this address."
)
LOCAL_SOURCE = "localhost"  # a client on the server's own machine (Streamlit reports no address)
RESERVED_USERNAMES = frozenset({SYSTEM.username, "setup"})  # audit actors that are not users
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so timing does not tell them apart."""
    return _hasher.hash("no-such-user-placeholder")


# ---------------------------------------------------------------- input checks


def check_password(password: str | None) -> str:
    """At least 12 characters; kept exactly as typed (never stripped, never echoed)."""
    password = password or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError("password", f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    if not password.strip():
        raise ValidationError("password", "The password must not be only spaces.")
    return password


def check_username(username: str | None) -> str:
    name = clean_text(username, "username", NAME_MAX)
    if name_key(name) in RESERVED_USERNAMES:
        raise ValidationError("username", f"The username '{name}' is reserved.")
    return name


def check_email(email: str | None) -> str | None:
    """An optional email, lower-cased: single sign-on matches users by it."""
    text = (email or "").strip().lower()
    if not text:
        return None
    if len(text) > EMAIL_MAX or not _EMAIL.match(text):
        raise ValidationError("email", "Enter a valid email address (name@example.com).")
    return text


def check_role(role: str | Role) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        raise ValidationError("role", f"Role must be one of: {', '.join(r.value for r in Role)}.") from None


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


# ---------------------------------------------------------------- reads


def has_users(session: Session) -> bool:
    return session.scalar(select(User.id).limit(1)) is not None


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError("user", f"No user with id {user_id}.")
    return user


def find_user(session: Session, username: str) -> User:
    user = _by_username(session, username)
    if user is None:
        raise ValidationError("user", f"No user named '{(username or '').strip()}'.")
    return user


def _by_username(session: Session, username: str) -> User | None:
    """The user whose name equals ``username`` ignoring case and Unicode form (see name_key)."""
    if not name_key(username or ""):
        return None
    return pick_by_name(session.scalars(select(User)), username, lambda u: u.username)


def list_users(session: Session, viewer: Viewer) -> list[User]:
    viewer.require(Role.ADMIN)
    return list(session.scalars(select(User).order_by(func.lower(User.username))))


def assigned_client_ids(session: Session, user_id: int) -> frozenset[int]:
    return frozenset(session.scalars(select(UserClient.client_id).where(UserClient.user_id == user_id)))


def assigned_clients(session: Session, viewer: Viewer, user_id: int) -> list[Client]:
    viewer.require(Role.ADMIN)
    query = (
        select(Client).join(UserClient, UserClient.client_id == Client.id)
        .where(UserClient.user_id == user_id).order_by(Client.name)
    )
    return list(session.scalars(query))


def viewer_for(session: Session, user_id: int) -> Viewer | None:
    """The viewer for a logged-in user id, read fresh: None once disabled or deleted."""
    user = session.get(User, user_id)
    if user is None or user.disabled:
        return None
    role = Role(user.role)
    client_ids = assigned_client_ids(session, user.id) if role is Role.CLIENT else frozenset()
    return Viewer(username=user.username, role=role, client_ids=client_ids)


def is_locked(user: User, now: datetime | None = None) -> bool:
    """Locked from at least one source (``users.locked_until`` is the latest such lock)."""
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def login_source(address: str | None) -> str:
    """The source a login counts against: the client's IPv4 address, or its IPv6 /64 network.

    An IPv6 client usually holds a whole /64 (RFC 6177), so counting single addresses would
    give it billions of fresh starts. None (Streamlit's answer for a loopback client) is
    LOCAL_SOURCE.
    """
    if not address:
        return LOCAL_SOURCE
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()[:LOGIN_SOURCE_MAX] or LOCAL_SOURCE
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return LOCAL_SOURCE
    return str(ip) if ip.version == 4 else str(ipaddress.ip_network(f"{ip}/64", strict=False))


# ---------------------------------------------------------------- login


def authenticate(session: Session, username: str, password: str, now: datetime | None = None,
                 source: str = "unknown") -> User | None:
    """The user when the password is right, the account usable and ``source`` not locked out.

    Returns rather than raises, so the failure count commits with the caller's
    transaction. Show ``LOGIN_FAILED_MESSAGE`` for None, whatever the reason.
    """
    now = now or utcnow()
    user = _by_username(session, username)
    # Always one argon2 verification, so response time does not tell the cases apart.
    has_password = user is not None and user.password_hash is not None
    password_ok = _verify(user.password_hash if has_password else _dummy_hash(), password)
    if user is None or not has_password:
        audit.record(session, user.username if user else "(unknown)", "login.failed",
                     detail="no password set (single sign-on only)" if user else "unknown username")
        return None
    if user.disabled:
        audit.record(session, user.username, "login.failed", detail="account disabled")
        return None
    throttle = session.get(LoginThrottle, (user.id, source))
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        audit.record(session, user.username, "login.failed", detail=f"account locked for {source}")
        return None
    if not password_ok:
        _count_failure(session, user, source, now)
        return None
    session.execute(delete(LoginThrottle).where(LoginThrottle.user_id == user.id, LoginThrottle.source == source))
    user.failed_logins = 0
    user.locked_until = _latest_lock(session, user.id, now)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    record_login(session, user, f"password from {source}", now)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, (password or "")[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(session: Session, user: User, source: str, now: datetime) -> None:
    """One atomic upsert per (account, source), so parallel guesses cannot slip past the limit.

    ``users.failed_logins`` counts failures from every source since the last success, and
    ``users.locked_until`` shows the latest lock (the Users page and ``user list``).
    """
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(LoginThrottle)
    failures = session.scalar(
        insert.values(user_id=user.id, source=source, failures=1)
        .on_conflict_do_update(index_elements=["user_id", "source"], set_={"failures": LoginThrottle.failures + 1})
        .returning(LoginThrottle.failures)
    )
    session.execute(update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1))
    audit.record(session, user.username, "login.failed", detail=f"wrong password from {source} (attempt {failures})")
    if failures is not None and failures >= MAX_FAILED_LOGINS:
        until = now + LOCKOUT
        session.execute(update(LoginThrottle).where(LoginThrottle.user_id == user.id, LoginThrottle.source == source)
                        .values(failures=0, locked_until=until))
        session.execute(update(User).where(User.id == user.id).values(locked_until=_latest_lock(session, user.id, now)))
        audit.record(session, user.username, "login.locked",
                     detail=f"{failures} failed attempts from {source}; that source is locked out until "
                            f"{until.isoformat(timespec='seconds')}")
    session.refresh(user)


def _latest_lock(session: Session, user_id: int, now: datetime) -> datetime | None:
    """The end of the user's latest lock still running, from any source."""
    return session.scalar(select(func.max(LoginThrottle.locked_until))
                          .where(LoginThrottle.user_id == user_id, LoginThrottle.locked_until > now))


def login_by_email(session: Session, email: str | None, provider: str, source: str = "unknown") -> User | None:
    """Single sign-on: the enabled user whose email the identity provider vouched for."""
    address = (email or "").strip().lower()
    user = session.scalar(select(User).where(func.lower(User.email) == address)) if address else None
    if user is None or user.disabled:
        reason = "account disabled" if user else "no user with this email"
        audit.record(session, user.username if user else "(unknown)", "login.failed",
                     detail=f"single sign-on ({provider}): {reason}")
        return None
    record_login(session, user, f"single sign-on ({provider}) from {source}")
    return user


def record_login(session: Session, user: User, method: str, now: datetime | None = None) -> None:
    """Every way in (password, single sign-on, the set-up screen) leaves the same trace: once
    per login, not per page load (a reload resumes the session, see lib.sessions)."""
    user.last_login_at = now or utcnow()
    audit.record(session, user.username, "login", detail=method)


# ---------------------------------------------------------------- changes (admin)


def create_first_admin(session: Session, username: str, password: str, email: str | None = None) -> User:
    """The set-up screen's account; refused once any user exists."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(0x5E7_0001)))  # two set-up screens at once
    if has_users(session):
        raise ValidationError("username", "The first admin has already been created; please log in.")
    return _create(session, "setup", username, Role.ADMIN, password, email)


def create_user(session: Session, viewer: Viewer, username: str, role: str | Role,
                password: str | None, email: str | None = None) -> User:
    """A new account. Without a password the user can only log in by single sign-on (needs an email)."""
    viewer.require(Role.ADMIN)
    return _create(session, viewer.username, username, check_role(role), password, email)


def _create(session: Session, actor: str, username: str, role: Role, password: str | None,
            email: str | None) -> User:
    name = check_username(username)
    address = check_email(email)
    if not password and not address:
        raise ValidationError("password", "Set a password, or an email for single sign-on.")
    password_hash = hash_password(password) if password else None
    existing = list(session.scalars(select(User)))
    if same_names(existing, name, lambda u: u.username):
        raise ValidationError("username", f"A user named '{name}' already exists.")
    alike = look_alikes(existing, name, lambda u: u.username)
    if alike:
        raise ValidationError("username", f"The username '{name}' looks like the existing user "
                                          f"'{alike[0].username}' (characters that look alike); "
                                          "choose a clearly different username.")
    _check_email_free(session, address)
    user = User(username=name, email=address, password_hash=password_hash, role=role.value)
    session.add(user)
    session.flush()
    detail = f"role {role.value}" + (f", email {address}" if address else "") + ("" if password else ", no password")
    audit.record(session, actor, "user.created", name, detail)
    return user


def _check_email_free(session: Session, email: str | None, except_id: int | None = None) -> None:
    if email is None:
        return
    query = select(User.id).where(func.lower(User.email) == email)
    if except_id is not None:
        query = query.where(User.id != except_id)
    if session.scalar(query) is not None:
        raise ValidationError("email", "Another user already has this email.")


def _other_active_admins(session: Session, user_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(User)
        .where(User.role == Role.ADMIN.value, User.disabled.is_(False), User.id != user_id)
    ) or 0


def set_role(session: Session, viewer: Viewer, user_id: int, role: str | Role) -> User:
    viewer.require(Role.ADMIN)
    user, new_role = get_user(session, user_id), check_role(role)
    if user.role == new_role.value:
        return user
    if user.role == Role.ADMIN.value and not user.disabled and _other_active_admins(session, user.id) == 0:
        raise ValidationError("role", "This is the last active admin; make another admin first.")
    audit.record(session, viewer.username, "user.role_changed", user.username, f"{user.role} -> {new_role.value}")
    user.role = new_role.value
    sessions.end_all(session, user.id, "role changed")
    return user


def set_email(session: Session, viewer: Viewer, user_id: int, email: str | None) -> User:
    viewer.require(Role.ADMIN)
    user, address = get_user(session, user_id), check_email(email)
    if user.email == address:
        return user
    if address is None and user.password_hash is None:
        raise ValidationError("email", "This user has no password; the email is their only way in.")
    _check_email_free(session, address, except_id=user.id)
    audit.record(session, viewer.username, "user.email_changed", user.username,
                 f"{user.email or '-'} -> {address or '-'}")
    user.email = address
    return user


def set_disabled(session: Session, viewer: Viewer, user_id: int, disabled: bool) -> User:
    viewer.require(Role.ADMIN)
    user = get_user(session, user_id)
    if user.disabled == disabled:
        return user
    if disabled and user.username.lower() == viewer.username.lower():
        raise ValidationError("user", "You cannot disable your own account.")
    if disabled and user.role == Role.ADMIN.value and _other_active_admins(session, user.id) == 0:
        raise ValidationError("user", "This is the last active admin; make another admin first.")
    user.disabled = disabled
    if disabled:
        sessions.end_all(session, user.id, "account disabled")
    else:
        _lift_locks(session, user)
    audit.record(session, viewer.username, "user.disabled" if disabled else "user.enabled", user.username)
    return user


def reset_password(session: Session, viewer: Viewer, user_id: int, password: str) -> User:
    """A new password (the old one stops working at once, and so do the user's sessions); also lifts a lockout."""
    viewer.require(Role.ADMIN)
    user = get_user(session, user_id)
    user.password_hash = hash_password(password)
    _lift_locks(session, user)
    sessions.end_all(session, user.id, "password reset")
    audit.record(session, viewer.username, "user.password_reset", user.username)
    return user


def unlock(session: Session, viewer: Viewer, user_id: int) -> User:
    viewer.require(Role.ADMIN)
    user = get_user(session, user_id)
    _lift_locks(session, user)
    audit.record(session, viewer.username, "user.unlocked", user.username)
    return user


def _lift_locks(session: Session, user: User) -> None:
    """Forget every failed login of the user, from every source."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.user_id == user.id))
    user.failed_logins, user.locked_until = 0, None


def set_clients(session: Session, viewer: Viewer, user_id: int, client_ids: Iterable[int]) -> User:
    """Exactly these clients for a client-role user (replaces the previous set)."""
    viewer.require(Role.ADMIN)
    user = get_user(session, user_id)
    wanted = set(client_ids)
    rows = session.execute(select(Client.id, Client.name).where(Client.id.in_(wanted)))
    names: dict[int, str] = {client_id: name for client_id, name in rows}
    if missing := wanted - set(names):
        raise ValidationError("client", f"No client with id {', '.join(map(str, sorted(missing)))}.")
    current = set(assigned_client_ids(session, user.id))
    if wanted == current:
        return user
    session.execute(delete(UserClient).where(UserClient.user_id == user.id,
                                             UserClient.client_id.in_(current - wanted)))
    session.add_all(UserClient(user_id=user.id, client_id=cid) for cid in wanted - current)
    audit.record(session, viewer.username, "user.clients_changed", user.username,
                 "clients: " + (", ".join(sorted(names.values())) or "none"))
    return user


def assign_client(session: Session, viewer: Viewer, user_id: int, client_id: int) -> User:
    return set_clients(session, viewer, user_id, assigned_client_ids(session, user_id) | {client_id})
