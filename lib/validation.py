"""Input checks shared by the forms and the CLI; errors are plain sentences for users."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from functools import cache
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class ValidationError(ValueError):
    """Bad input; nothing was changed. ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


#: Letters that draw nothing (Hangul and braille fillers, combining grapheme joiner, Khmer
#: inherent vowels): invisible like the format characters, though Unicode files them elsewhere.
_BLANK_LETTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")


def is_invisible(ch: str) -> bool:
    """A character that draws nothing or reorders what follows: controls, zero-width and
    bidirectional format characters (Cf: U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+FEFF...),
    line and paragraph separators, and blank letters.

    With them two different names can look the same, or a name can look reversed. Categories per
    https://www.unicode.org/reports/tr44/#General_Category_Values; bidirectional controls per
    https://www.unicode.org/reports/tr9/#Directional_Formatting_Characters.
    """
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch in _BLANK_LETTERS


def has_invisible(text: str) -> bool:
    """Whether any character of ``text`` ``is_invisible``. A printable string (``str.isprintable``:
    no Cc, Cf, Zl or Zp character) without a blank letter has none, which is checked at C speed;
    only the rest is looked at character by character."""
    if text.isprintable() and _BLANK_LETTERS.isdisjoint(text):
        return False
    return any(is_invisible(ch) for ch in text)


def clean_text(value: str | None, field: str, max_length: int) -> str:
    """Normalise (NFKC), trim and bound a name; refuse empty names and invisible characters.

    NFKC folds compatibility look-alikes (full-width letters, ligatures, non-breaking spaces)
    into their plain form (https://unicode.org/reports/tr15/#Norm_Forms). A name that is empty
    once its invisible characters are removed is "empty"; one that holds any is refused, since
    it would read like another name or turn the text around it.
    """
    text = unicodedata.normalize("NFKC", value or "").strip()
    if not "".join(ch for ch in text if not is_invisible(ch)).strip():
        raise ValidationError(field, f"{field.capitalize()} must not be empty.")
    if len(text) > max_length:
        raise ValidationError(
            field, f"{field.capitalize()} is too long ({len(text)} characters; at most {max_length})."
        )
    hidden = sorted({f"U+{ord(ch):04X}" for ch in text if is_invisible(ch)})
    if hidden:
        raise ValidationError(field, f"{field.capitalize()} must not contain control, zero-width or "
                                     f"text-direction characters (found {', '.join(hidden)}).")
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


@cache
def _prototypes() -> dict[str, str]:
    """Unicode's confusables.txt (UTS #39 data: character -> prototype), rebuilt from the
    confusable_homoglyphs package, which ships it as undirected lists of look-alikes.

    Its generator (confusable_homoglyphs.cli.generate_confusables) reads each line "source →
    prototype" and appends the prototype to the source's list, then the source to the
    prototype's. Every source has one line and no prototype is a source (skeletons are
    idempotent), so a source is a character with exactly one entry. A prototype with a single
    source has one entry too; it is told apart by coming after its source, since the data keeps
    the file's order. Right-to-left characters are stored between U+200E marks, removed here.

    Checked against confusables.txt 14.0.0, the data's version: the same 6,307 mappings; the
    package lacks U+2028, U+2029, U+3164 (clean_text refuses them) and U+1F16D (CIRCLED CC).
    """
    from confusable_homoglyphs.confusables import confusables_data  # 65 ms: loaded when first needed

    def plain(text: str) -> str:
        return text.replace("\u200e", "")

    order: dict[str, int] = {}
    for index, key in enumerate(confusables_data):
        order.setdefault(plain(key), index)
    table = {}
    for key, entries in confusables_data.items():
        source = plain(key)
        if len(source) != 1 or len(entries) != 1:
            continue
        target = plain(entries[0]["c"])
        if len(target) > 1 or len(confusables_data.get(entries[0]["c"], ())) > 1 or order[source] < order[target]:
            table[source] = target
    return table


def skeleton(text: str) -> str:
    """UTS #39's skeleton: NFD, each character replaced by its prototype, NFD again; strings
    that can be mistaken for each other have the same skeleton ("Аcme" with a Cyrillic А and
    "Acme"; "paypaI" and "paypal"). A key for comparing, never for display.

    Characters that draw nothing are dropped first, as UTS #39 does since version 15.1 with
    default ignorables. https://www.unicode.org/reports/tr39/#Confusable_Detection
    """
    prototypes = _prototypes()
    text = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(prototypes.get(ch, ch) for ch in text if not is_invisible(ch)))


def _looks(name: str) -> tuple[str, str, str]:
    """How an NFKC name reads as typed, case-folded and in capitals (their skeletons).

    As typed keeps I and l alike ("paypaI"), which case folding would turn into i and l; the
    folded form catches a look-alike in another case ("аcme" for "ACME"); capitals catch
    Greek and Cyrillic capitals spelling a Latin name ("АСМЕ" for "Acme").
    """
    text = unicodedata.normalize("NFKC", name.strip())
    return skeleton(text), skeleton(text.casefold()), skeleton(text.upper())


def look_alikes(rows: Iterable[T], name: str, name_of: Callable[[T], str]) -> list[T]:
    """The rows whose name is not ``name`` (see name_key) but looks like it: the same skeleton
    as typed, case-folded or in capitals (see _looks). A new name or a rename wants none.

    Compared in Python like same_names; rows that already look alike keep working, since
    lookups go by name_key (pick_by_name).
    """
    key, looks = name_key(name), _looks(name)
    return [row for row in rows
            if name_key(name_of(row)) != key and any(a == b for a, b in zip(looks, _looks(name_of(row)), strict=True))]


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
    try:  # urlsplit refuses an unclosed IPv6 bracket, .port a port outside 0-65535
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, 0
    if parts is None or port == 0:
        raise ValidationError("api_url", "The API URL is malformed: check the host (an IPv6 address goes "
                                         "in brackets) and the port (a number from 1 to 65535).")
    if parts.scheme not in ("http", "https") or not parts.hostname:
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
