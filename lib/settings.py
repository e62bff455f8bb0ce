"""Settings from the environment, a ``.env`` file, or ``.streamlit/secrets.toml``.

Precedence: real environment variables, then ``.env``, then secrets.toml (top-level keys),
then defaults. Read once per process; tests call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_USD_LIKE = ("USD", "USDT", "USDC", "FDUSD", "DAI", "TUSD", "BUSD")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: the longest sync interval (a day): longer ones overflow timers and mean "never"
MAX_INTERVAL_SECONDS = 86_400
#: the most sync processes (SYNC_PROCESSES): each holds its own interpreter, connections and rows in flight
MAX_SYNC_PROCESSES = 64


#: loggers kept at WARNING whatever LOG_LEVEL says: at DEBUG they print request URLs and
#: headers, which carry API keys and signatures
QUIET_LOGGERS = ("urllib3", "requests", "aiohttp", "ccxt", "alembic", "watchdog")


class SettingsError(ValueError):
    """A setting has a value the app cannot use; the message names the setting."""


def configure_logging(level: str, fmt: str | None = None) -> None:
    """Root logging at ``level``; HTTP and exchange libraries never below WARNING (see QUIET_LOGGERS)."""
    logging.basicConfig(level=level, **({"format": fmt} if fmt else {}))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class Settings:
    """Every knob the app reads; the README's settings table mirrors this."""

    database_url: str
    data_dir: Path
    encryption_keys: tuple[str, ...] = field(repr=False)
    key_file: Path
    sync_interval_seconds: int
    sync_processes: int
    snapshot_detail_days: int
    session_idle_minutes: int
    session_max_hours: int
    session_secret: str = field(repr=False)
    usd_like: frozenset[str]
    cache_ttl_seconds: int
    run_worker_in_app: bool
    log_level: str
    demo_port: int

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _secrets_toml() -> dict[str, str]:
    path = PROJECT_ROOT / ".streamlit" / "secrets.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    return {k: str(v) for k, v in data.items() if not isinstance(v, dict)}


def _sources() -> dict[str, str]:
    merged: dict[str, str] = dict(_secrets_toml())
    env_file = Path(os.environ.get("DOTENV_PATH", PROJECT_ROOT / ".env"))
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def _as_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _positive_int(values: dict[str, str], name: str, default: int, maximum: int = 1_000_000) -> int:
    """A whole number from 1 to ``maximum``: "nan", "inf", "1e9", negatives and huge values are
    refused by name, since a timer fed one would spin (0), overflow or never fire."""
    text = values.get(name, "").strip()
    if not text:
        return default
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= maximum:
        raise SettingsError(f"{name} must be a whole number from 1 to {maximum} (got {text[:20]!r}).")
    return number


def _log_level(values: dict[str, str]) -> str:
    level = (values.get("LOG_LEVEL") or "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (got {level[:20]!r}).")
    return level


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, checked; raises SettingsError naming a setting the app cannot use."""
    values = _sources()
    data_dir = Path(values.get("DATA_DIR", DEFAULT_DATA_DIR)).expanduser()
    database_url = values.get("DATABASE_URL") or f"sqlite:///{data_dir / 'dashboard.db'}"
    raw_keys = values.get("ENCRYPTION_KEYS") or values.get("ENCRYPTION_KEY") or ""
    usd_like = values.get("USD_LIKE_ASSETS") or ",".join(DEFAULT_USD_LIKE)
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        encryption_keys=tuple(k.strip() for k in raw_keys.split(",") if k.strip()),
        key_file=Path(values.get("ENCRYPTION_KEY_FILE", data_dir / "encryption.key")),
        sync_interval_seconds=_positive_int(values, "SYNC_INTERVAL_SECONDS", 60, MAX_INTERVAL_SECONDS),
        sync_processes=_positive_int(values, "SYNC_PROCESSES", min(os.cpu_count() or 1, MAX_SYNC_PROCESSES),
                                      MAX_SYNC_PROCESSES),
        snapshot_detail_days=_positive_int(values, "SNAPSHOT_DETAIL_DAYS", 7, 36_500),
        session_idle_minutes=_positive_int(values, "SESSION_IDLE_MINUTES", 30, 7 * 24 * 60),
        session_max_hours=_positive_int(values, "SESSION_MAX_HOURS", 12, 30 * 24),
        session_secret=(values.get("SESSION_SECRET") or "").strip(),
        usd_like=frozenset(a.strip().upper() for a in usd_like.split(",") if a.strip()),
        cache_ttl_seconds=_positive_int(values, "CACHE_TTL_SECONDS", 60, 86_400),
        run_worker_in_app=_as_bool(values.get("RUN_WORKER_IN_APP", "true")),
        log_level=_log_level(values),
        demo_port=_positive_int(values, "DEMO_SIMULATOR_PORT", 8900, 65_535),
    )
