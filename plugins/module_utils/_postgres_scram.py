# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256 verifiers: libpq makes them, this file only compares them.

A new verifier (``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>``, what PostgreSQL
keeps in ``pg_authid.rolpassword``) comes from libpq's ``PQencryptPasswordConn`` through
psycopg (:func:`libpq_verifier`): libpq applies SASLprep, draws the salt and uses the
server's iteration count, as ``psql``'s ``\\password`` does, and the plain text never
leaves the client.

Whether a stored verifier already belongs to a password cannot be asked of libpq: it
always draws a new random salt and takes no salt as input. So :func:`verifier_matches`
recomputes StoredKey and ServerKey with the stored salt and iteration count (RFC 5802
section 3, PBKDF2 and two HMACs), over the password prepared as PostgreSQL prepares it
(:func:`saslprep`); without that, a non-ASCII password that SASLprep changes would never
match and its role would be altered on every run. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import stringprep
import unicodedata
from dataclasses import dataclass
from typing import Any

SCRAM = "scram-sha-256"
_SCRAM_RE = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def libpq_verifier(conn: Any, password: str, role: str) -> str:
    """A new SCRAM-SHA-256 verifier of ``password`` for ``role``, made by libpq.

    ``conn`` is a psycopg connection; its ``pgconn`` gives libpq the server's iteration
    count. Naming the algorithm keeps libpq from asking the server which one to use, so
    nothing is sent.
    """
    verifier = conn.pgconn.encrypt_password(password.encode("utf-8"), role.encode("utf-8"), SCRAM.encode("ascii"))
    return bytes(verifier).decode("ascii")


def _prohibited(char: str) -> bool:
    return (
        stringprep.in_table_c12(char)
        or stringprep.in_table_c21_c22(char)
        or stringprep.in_table_c3(char)
        or stringprep.in_table_c4(char)
        or stringprep.in_table_c5(char)
        or stringprep.in_table_c6(char)
        or stringprep.in_table_c7(char)
        or stringprep.in_table_c8(char)
        or stringprep.in_table_c9(char)
        or stringprep.in_table_a1(char)
    )


def saslprep(password: str) -> bytes:
    """The bytes PostgreSQL hashes for ``password`` (its ``pg_saslprep`` behaviour).

    Pure ASCII passes unchanged. Otherwise RFC 4013: non-ASCII spaces become spaces,
    characters "commonly mapped to nothing" go, NFKC normalisation; when a prohibited
    or unassigned character or a bad bidi string is found, PostgreSQL falls back to the
    raw UTF-8 bytes, and so does this.
    """
    raw = password.encode("utf-8")
    if password.isascii():
        return raw
    mapped = [" " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c)]
    if not mapped:
        return raw
    # PostgreSQL checks the mapped input (before normalisation), so this does too.
    if any(_prohibited(c) for c in mapped):
        return raw
    if any(stringprep.in_table_d1(c) for c in mapped):
        if any(stringprep.in_table_d2(c) for c in mapped):
            return raw
        if not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])):
            return raw
    return unicodedata.normalize("NFKC", "".join(mapped)).encode("utf-8")


def scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """``(StoredKey, ServerKey)`` of RFC 5802 section 3 for SHA-256."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


@dataclass(frozen=True)
class ScramVerifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def parse_scram_verifier(text: str | None) -> ScramVerifier | None:
    """The parts of a stored SCRAM verifier; ``None`` for anything else (md5, NULL)."""
    match = _SCRAM_RE.match(text or "")
    if not match:
        return None
    try:
        return ScramVerifier(
            int(match.group(1)),
            base64.b64decode(match.group(2), validate=True),
            base64.b64decode(match.group(3), validate=True),
            base64.b64decode(match.group(4), validate=True),
        )
    except ValueError:
        return None


def verifier_matches(stored: str | None, password: str) -> bool:
    """Whether ``stored`` is a SCRAM verifier of ``password`` (recomputed with its salt)."""
    parsed = parse_scram_verifier(stored)
    if parsed is None:
        return False
    stored_key, server_key = scram_keys(password, parsed.salt, parsed.iterations)
    return hmac.compare_digest(stored_key, parsed.stored_key) and hmac.compare_digest(server_key, parsed.server_key)


def password_kind(stored: str | None) -> str:
    """``scram-sha-256``, ``md5``, ``none`` or ``other``: what kind of secret a role has."""
    if not stored:
        return "none"
    if parse_scram_verifier(stored):
        return SCRAM
    if stored.startswith("md5") and len(stored) == 35:
        return "md5"
    return "other"
