"""Input checks shared by the forms and the CLI; errors are plain sentences for users."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class ValidationError(ValueError):
    """Bad input; nothing was changed. ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def clean_text(value: str | None, field: str, max_length: int) -> str:
    """Trim, normalise (NFC) and bound a name-like text; refuse empty and control characters."""
    text = unicodedata.normalize("NFC", (value or "").strip())
    if not text:
        raise ValidationError(field, f"{field.capitalize()} must not be empty.")
    if len(text) > max_length:
        raise ValidationError(
            field, f"{field.capitalize()} is too long ({len(text)} characters; at most {max_length})."
        )
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ValidationError(field, f"{field.capitalize()} must not contain control characters.")
    return text


def name_key(text: str) -> str:
    """What makes two names the same for uniqueness and lookups: case and Unicode form ignored.

    Compared in Python, because SQLite's lower() folds ASCII only ("ÉCOLE" would not match "école").
    """
    return unicodedata.normalize("NFKC", text.strip()).casefold()


def same_names(rows: Iterable[T], name: str, name_of: Callable[[T], str]) -> list[T]:
    """The rows whose name equals ``name`` by name_key: a uniqueness check wants none."""
    key = name_key(name)
    return [row for row in rows if name_key(name_of(row)) == key]


def pick_by_name(rows: Iterable[T], name: str, name_of: Callable[[T], str]) -> T | None:
    """The row named ``name`` (see name_key); an exact match wins among several.

    Several rows can share a key only if created before names were compared this way; a
    lookup that cannot tell them apart returns None rather than guess.
    """
    matches = same_names(rows, name, name_of)
    if len(matches) == 1:
        return matches[0]
    exact = [row for row in matches if name_of(row) == name.strip()]
    return exact[0] if len(exact) == 1 else None


def clean_url(value: str | None, max_length: int) -> str | None:
    """An optional http(s) base URL without query or fragment."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > max_length:
        raise ValidationError("api_url", f"The API URL is too long (at most {max_length} characters).")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("api_url", "The API URL must start with http:// or https:// and name a host.")
    if "@" in parts.netloc:  # user:password@host would be stored and shown in the clear
        raise ValidationError("api_url", "The API URL must not contain a user name or password.")
    if parts.query or parts.fragment:
        raise ValidationError("api_url", "The API URL must not contain a query or fragment.")
    return text.rstrip("/")


def clean_secret(value: str | None, field: str, max_length: int = 4096) -> str:
    """A credential: stripped of surrounding whitespace (a copy-paste slip), never echoed."""
    text = (value or "").strip()
    if not text:
        raise ValidationError(field, f"{field} is required for this exchange.")
    if len(text) > max_length:
        raise ValidationError(field, f"{field} is too long (at most {max_length} characters).")
    if any(ch.isspace() for ch in text):
        raise ValidationError(field, f"{field} must not contain spaces or line breaks.")
    return text
