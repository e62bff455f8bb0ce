"""The one place that builds ccxt exchange objects and turns ccxt errors into plain words.

Everything else asks this module for an exchange instance, so URL overrides, sandbox
mode, timeouts, redirects and error classification are decided once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from lib import plugins

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ccxt credential attribute -> label shown in forms. ``password`` is what exchanges call
#: passphrase or memo.
CREDENTIAL_LABELS: dict[str, str] = {
    "apiKey": "API key",
    "secret": "API secret",
    "password": "Passphrase / memo",
    "uid": "UID",
    "accountId": "Account ID",
    "login": "Login",
    "twofa": "2FA secret",
    "privateKey": "Private key",
    "walletAddress": "Wallet address",
    "token": "Token",
}

DEFAULT_TIMEOUT_MS = 10_000


class UnsupportedExchange(ValueError):
    """Neither the installed ccxt nor a plug-in provides this exchange id."""

    def __init__(self, exchange_id: str) -> None:
        super().__init__(
            f"Exchange '{exchange_id}' is not supported by the installed ccxt "
            f"(ccxt {ccxt.__version__}) or any installed plug-in; it may have been delisted or never been part of it."
        )
        self.exchange_id = exchange_id


def supported_exchanges() -> list[str]:
    """Exchange ids the installed ccxt or an installed plug-in (``lib.plugins``) can talk to, sorted."""
    return sorted({*ccxt.exchanges, *plugins.available()})


def is_supported(exchange_id: str) -> bool:
    return exchange_id in ccxt.exchanges or exchange_id in plugins.available()


def _exchange_class(exchange_id: str, *, asynchronous: bool = False) -> type:
    """ccxt's class where ccxt lists the id (a plug-in never shadows it), else the plug-in's."""
    if exchange_id in ccxt.exchanges:
        return getattr(ccxt_async if asynchronous else ccxt, exchange_id)
    cls = plugins.exchange_class(exchange_id, asynchronous=asynchronous)
    if cls is None:
        raise UnsupportedExchange(exchange_id)
    return cls


def required_credentials(exchange_id: str) -> list[str]:
    """The credential attributes (ccxt names) this exchange requires, apiKey first."""
    required = _exchange_class(exchange_id)().requiredCredentials
    return [name for name in CREDENTIAL_LABELS if required.get(name)]


def credential_labels(exchange_id: str) -> dict[str, str]:
    """How forms name each credential of this exchange: ``CREDENTIAL_LABELS`` with the exchange's
    own words where its class gives them (a plug-in's ``credentialLabels``, e.g. BitMart's memo)."""
    own = getattr(_exchange_class(exchange_id)(), "credentialLabels", None) or {}
    return {**CREDENTIAL_LABELS, **{name: str(label) for name, label in own.items() if name in CREDENTIAL_LABELS}}


def supports_sandbox(exchange_id: str) -> bool:
    return bool(_exchange_class(exchange_id)().has.get("sandbox"))


def override_api_urls(urls: Any, base_url: str) -> Any:
    """Point every API URL of an exchange at ``base_url``, keeping each URL's path.

    ``https://api.binance.com/api/v3`` with base ``http://127.0.0.1:8900/binance`` becomes
    ``http://127.0.0.1:8900/binance/api/v3``. Templates such as ``https://{hostname}`` become
    the base itself. Works on the nested dict/str structure of ``exchange.urls['api']``.
    """
    base = base_url.rstrip("/")
    if isinstance(urls, str):
        if "://" not in urls:
            return urls
        path = urlsplit(urls.replace("{hostname}", "host")).path
        return base + path.rstrip("/") if path not in ("", "/") else base
    if isinstance(urls, Mapping):
        return {key: override_api_urls(value, base) for key, value in urls.items()}
    if isinstance(urls, list):
        return [override_api_urls(value, base) for value in urls]
    return urls


@dataclass(frozen=True)
class ConnectionSpec:
    """What it takes to build an exchange instance; credentials stay in memory only."""

    exchange_id: str
    credentials: Mapping[str, str]
    api_url: str | None = None
    sandbox: bool = False
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __repr__(self) -> str:  # never print the credentials
        return (
            f"ConnectionSpec(exchange_id={self.exchange_id!r}, api_url={self.api_url!r}, "
            f"sandbox={self.sandbox!r}, credentials=<{len(self.credentials)} hidden>)"
        )


#: the HTTP status of the answer to the request in flight, per asyncio task / thread
_response_status: ContextVar[int | None] = ContextVar("exchange_response_status", default=None)


def _record_http_status(exchange: Any) -> None:
    """Tag every error a request raises with that request's HTTP status (``error.http_status``).

    ccxt 4.5.90 keeps the last response's body and headers (``last_http_response``,
    ``last_response_headers``) but not its status, and an exchange's ``handle_errors`` maps
    the error code in the body before ``handle_http_status_code`` looks at the status: a
    500 with a JSON body arrives as a plain ``ExchangeError`` (crypto.com), its message
    without the status. ccxt calls ``on_rest_response`` with every answer's status before
    either; the status travels from there to the ``fetch`` wrapper in a context variable,
    which each asyncio task and thread has its own of. So concurrent requests on one
    instance (the sync fetches fills, orders and positions at once) never see each
    other's status, and a request that got no answer (timeout, refused connection) is
    tagged with none, whatever an earlier request answered.
    """
    fetch, on_rest_response = exchange.fetch, exchange.on_rest_response

    def recording_on_rest_response(code: Any, reason: Any, url: Any, method: Any, headers: Any,
                                   *args: Any) -> Any:
        status = int(code) if code is not None else None
        _response_status.set(status)
        if status is not None and 300 <= status < 400 and status != 304:  # 304 Not Modified moves nothing
            location = next((str(v) for k, v in dict(headers or {}).items() if str(k).lower() == "location"), "")
            raise RedirectRefused(exchange.id, status, location)
        return on_rest_response(code, reason, url, method, headers, *args)

    def tag(error: Exception) -> None:
        status = _response_status.get()
        if status is not None:
            error.http_status = status  # type: ignore[attr-defined]

    if inspect.iscoroutinefunction(fetch):
        async def tagging_fetch(*args: Any, **kwargs: Any) -> Any:
            token = _response_status.set(None)
            try:
                return await fetch(*args, **kwargs)
            except Exception as error:
                tag(error)
                raise
            finally:
                _response_status.reset(token)
    else:
        def tagging_fetch(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            token = _response_status.set(None)
            try:
                return fetch(*args, **kwargs)
            except Exception as error:
                tag(error)
                raise
            finally:
                _response_status.reset(token)

    exchange.on_rest_response = recording_on_rest_response
    exchange.fetch = tagging_fetch


class RedirectRefused(ccxt.ExchangeError):
    """The API answered with a redirect, which is not followed (see ``_refuse_redirects``)."""

    def __init__(self, exchange_id: str, status: int, location: str) -> None:
        self.status, self.target = status, _redirect_target(location)
        super().__init__(f"{exchange_id} answered HTTP {status} redirecting to {self.target}")


def _redirect_target(location: str) -> str:
    """Where a redirect points, by host only: its path and query may carry a signature."""
    try:
        host = urlsplit(location).hostname
    except ValueError:
        host = None
    return host or ("another address on the same host" if location else "no address")


#: the session methods ccxt sends requests with (requests: ``request``; aiohttp: one per verb)
_REQUEST_METHODS = frozenset({"request", "get", "post", "put", "delete", "patch", "head", "options"})


class _NoRedirects:
    """A ccxt HTTP session (``requests.Session`` or ``aiohttp.ClientSession``) whose requests
    return a redirect instead of following it: ``allow_redirects=False`` on every request
    (https://requests.readthedocs.io/en/latest/user/quickstart/#redirection-and-history,
    https://docs.aiohttp.org/en/v3.14.1/client_reference.html ``allow_redirects``)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._session, name)
        return functools.partial(attribute, allow_redirects=False) if name in _REQUEST_METHODS else attribute


def _refuse_redirects(exchange: Any) -> None:
    """Never follow a redirect from an API host: both HTTP libraries would resend the signed
    request, with the key in its headers, to wherever the answer points, a host the admin
    never configured. The redirect comes back to ccxt as an answer, and ``on_rest_response``
    (``_record_http_status``) turns it into ``RedirectRefused``.

    The synchronous class builds its ``requests.Session`` when constructed; the asyncio class
    opens its ``aiohttp.ClientSession`` lazily on the first request, so that opening is wrapped.
    """
    if exchange.session is not None:
        exchange.session = _NoRedirects(exchange.session)
    if inspect.iscoroutinefunction(exchange.fetch):
        open_session = exchange.open

        def open_refusing_redirects(*args: Any, **kwargs: Any) -> None:
            open_session(*args, **kwargs)
            if exchange.session is not None and not isinstance(exchange.session, _NoRedirects):
                exchange.session = _NoRedirects(exchange.session)

        exchange.open = open_refusing_redirects


def http_status(error: BaseException) -> int | None:
    """The HTTP status of the answer that raised ``error``; None when no answer came."""
    status = getattr(error, "http_status", None)
    return status if isinstance(status, int) else None


def _configure(exchange: Any, spec: ConnectionSpec) -> Any:
    if spec.sandbox:
        exchange.set_sandbox_mode(True)
    if spec.api_url:
        exchange.urls["api"] = override_api_urls(exchange.urls["api"], spec.api_url)
    _refuse_redirects(exchange)
    _record_http_status(exchange)
    return exchange


def _config(spec: ConnectionSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"timeout": spec.timeout_ms, "enableRateLimit": True}
    config.update({k: v for k, v in spec.credentials.items() if v})
    return config


def build_exchange(spec: ConnectionSpec) -> Any:
    """A synchronous ccxt exchange (for one-off calls such as "Test connection")."""
    cls = _exchange_class(spec.exchange_id)
    return _configure(cls(_config(spec)), spec)


def build_async_exchange(spec: ConnectionSpec) -> Any:
    """An asyncio ccxt exchange; the caller must ``await exchange.close()``."""
    cls = _exchange_class(spec.exchange_id, asynchronous=True)
    return _configure(cls(_config(spec)), spec)


# --- error classification -------------------------------------------------------------

RETRYABLE = (
    ccxt.NetworkError,  # includes RequestTimeout, DDoSProtection, RateLimitExceeded,
    ccxt.ExchangeNotAvailable,  # OnMaintenance
    ccxt.BadResponse,  # malformed JSON and the like; usually transient
)
# A person has to change the key or its permissions; retrying cannot help.
NEEDS_ATTENTION = (ccxt.AuthenticationError, ccxt.AccountSuspended, ccxt.PermissionDenied)
# Not retried either: a clock out of step fails every signed request the same way until
# the host's clock is fixed, but the key itself is fine, so the connector keeps its turn.
NOT_RETRYABLE = (*NEEDS_ATTENTION, ccxt.InvalidNonce)


#: answers that mean "try again" whatever ccxt class they arrive as, beside every 5xx:
#: 408 https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/408 (the server gave up
#: waiting), 425 https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/425 (a client
#: "SHOULD retry", RFC 8470), 429 https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/429
#: (rate limit, maybe with Retry-After)
TRANSIENT_STATUSES = frozenset({408, 425, 429})


class RetryAfterTooLong(ccxt.RateLimitExceeded):
    """The exchange asked us to wait longer than one sync may; the next cycle tries again."""

    def __init__(self, seconds: float, limit: float) -> None:
        super().__init__(f"Retry-After {seconds:.0f}s exceeds {limit:.0f}s")
        self.seconds = seconds


def is_transient_status(status: int | None) -> bool:
    """408, 425, 429 and 5xx: the server's state, not the request, made it fail.

    A 5xx is "the server failed to fulfil an apparently valid request"
    (https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503: "used for temporary
    conditions").
    """
    return status is not None and (status in TRANSIENT_STATUSES or 500 <= status <= 599)


def is_retryable(error: BaseException) -> bool:
    """Transient by ccxt class or by the answer's HTTP status; never a key or clock problem.

    ccxt classifies by the body's error code first, so a 500 whose JSON body carries an
    unmapped code is a plain ExchangeError (crypto.com's ``handle_errors``); its status
    still says "server error". A key refused with a 5xx stays refused.
    """
    if isinstance(error, NOT_RETRYABLE):
        return False
    return isinstance(error, RETRYABLE) or is_transient_status(http_status(error))


def needs_attention(error: BaseException) -> bool:
    """Errors a retry cannot fix: a person has to change the key or its permissions."""
    return isinstance(error, NEEDS_ATTENTION)


def describe_error(error: BaseException, *, retried_later: bool = True) -> str:
    """One plain-language line for an exchange error, safe to show and to store.

    The exchange's own message is not echoed verbatim: some exchanges repeat request
    parameters (and so the API key) in their errors. ``retried_later=False`` leaves out
    the promise that a later sync retries (a connection test says what to do instead).
    """
    later = "; it will be retried later." if retried_later else "."
    status = http_status(error)
    if isinstance(error, UnsupportedExchange):
        return str(error)
    if isinstance(error, ccxt.PermissionDenied):
        return (
            "The exchange refused the request: the API key lacks a permission, or this "
            "server's IP address is not on the key's allow-list."
        )
    if isinstance(error, ccxt.AccountSuspended):
        return "The exchange says this account is suspended."
    if isinstance(error, ccxt.AuthenticationError):
        text = str(error).lower()
        if "passphrase" in text or "password" in text:
            return "Authentication failed: the passphrase is wrong or missing."
        if "ip" in text and ("whitelist" in text or "allow" in text):
            return "Authentication failed: this server's IP address is not on the key's allow-list."
        if "timestamp" in text or "recvwindow" in text:
            return "Authentication failed: this server's clock is out of sync with the exchange."
        return "Authentication failed: the API key or secret is wrong, expired or revoked."
    if isinstance(error, ccxt.InvalidNonce):
        return "Signed requests were refused: this server's clock is out of sync with the exchange."
    if isinstance(error, ccxt.ArgumentsRequired):
        return "A required credential is missing for this exchange."
    if isinstance(error, RedirectRefused):
        return (f"The exchange's API answered with a redirect (HTTP {error.status}) to {error.target}; it was not "
                "followed, so the key was not sent there. Check the connector's API URL.")
    if isinstance(error, RetryAfterTooLong):
        return "The exchange asked to pause requests for a while (rate limit)" + (
            "; the next sync will try again." if retried_later else ".")
    if isinstance(error, ccxt.RateLimitExceeded | ccxt.DDoSProtection) or status == 429:
        return "The exchange is rate-limiting requests" + later
    if isinstance(error, ccxt.RequestTimeout):
        return "The exchange did not answer in time."
    if isinstance(error, ccxt.OnMaintenance):
        return "The exchange is under maintenance."
    if isinstance(error, ccxt.ExchangeNotAvailable):
        return "The exchange is unavailable or unreachable right now."
    if isinstance(error, ccxt.NetworkError):
        return "The exchange could not be reached (network error)."
    if isinstance(error, ccxt.BadResponse):
        return "The exchange sent a response that could not be understood."
    if isinstance(error, ccxt.NotSupported):
        return "This exchange does not support that request through ccxt."
    if is_transient_status(status):
        return f"The exchange answered with a temporary error (HTTP {status})."
    if isinstance(error, ccxt.BaseError):
        return f"The exchange returned an error ({type(error).__name__})."
    return f"Unexpected error ({type(error).__name__})."


def retry_after_seconds(headers: Mapping[str, Any] | None, now: datetime | None = None) -> float | None:
    """The Retry-After hint of the last response in seconds (delta-seconds or HTTP-date form)."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() != "retry-after":
            continue
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            pass
        try:
            until = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        if until.tzinfo is None:
            return None
        return max(0.0, (until - (now or datetime.now(UTC))).total_seconds())
    return None


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 20.0) -> float:
    """Exponential backoff with full jitter (AWS style)."""
    return random.uniform(0, min(cap, base * 2**attempt))


def retry_delay(error: Exception, attempt: int, attempts: int, base_delay: float, max_delay: float,
                headers: Mapping[str, Any] | None) -> float | None:
    """Seconds to wait before retrying after ``error`` on attempt ``attempt`` (0-based), or
    None when it must be raised: not retryable (``is_retryable``) or the last attempt.

    ``headers`` are the failed response's (``exchange.last_response_headers``), so a
    Retry-After sent with a 429 or 503 is honoured instead of guessed
    (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Retry-After). One longer
    than ``max_delay`` is not cut short (retrying early prolongs bans such as Binance's
    418): ``RetryAfterTooLong`` is raised and the caller's next run tries again.
    """
    if not is_retryable(error) or attempt == attempts - 1:
        return None
    delay = retry_after_seconds(headers)
    if delay is not None and delay > max_delay:
        raise RetryAfterTooLong(delay, max_delay) from error
    if delay is None:
        delay = backoff_delay(attempt, base_delay, max_delay)
    log.info("retrying after %s (attempt %d): %.2fs", type(error).__name__, attempt + 1, delay)
    return delay


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    last_headers: Callable[[], Mapping[str, Any] | None] = lambda: None,
) -> T:
    """Run ``call`` retrying transient exchange errors (see ``retry_delay``); re-raise
    everything else at once."""
    for attempt in range(attempts):
        try:
            return await call()
        except Exception as error:  # noqa: BLE001 - classified by retry_delay
            delay = retry_delay(error, attempt, attempts, base_delay, max_delay, last_headers())
            if delay is None:
                raise
            await sleep(delay)
    raise AssertionError("unreachable")


def call_with_retry_blocking(
    call: Callable[[], T],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    sleep: Callable[[float], None] = time.sleep,
    last_headers: Callable[[], Mapping[str, Any] | None] = lambda: None,
) -> T:
    """``call_with_retry`` for a synchronous ccxt call (the dashboard's and CLI's key tests),
    with the same rules, so a test fails only where a sync would."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - classified by retry_delay
            delay = retry_delay(error, attempt, attempts, base_delay, max_delay, last_headers())
            if delay is None:
                raise
            sleep(delay)
    raise AssertionError("unreachable")
