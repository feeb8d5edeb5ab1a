# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256: libpq makes the verifiers, the comparison (with SASLprep) must accept
exactly libpq's and PostgreSQL's own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

# The fakes live beside their own tests (pytest puts this directory on sys.path).
import test_postgres as fakes

from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_scram as scram

SALT = fakes.SALT

# --- SCRAM -------------------------------------------------------------------------------

# RFC 7677 section 3: user "user", password "pencil".
RFC7677 = {
    "password": "pencil",
    "salt": "W22ZaJ0SNY7soEsUEjb6gQ==",
    "iterations": 4096,
    "client_first_bare": "n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final_without_proof": "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "client_proof": "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_signature": "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def test_scram_keys_match_the_rfc7677_exchange():
    salt = base64.b64decode(RFC7677["salt"])
    stored_key, server_key = scram.scram_keys(RFC7677["password"], salt, RFC7677["iterations"])
    parsed = scram.parse_scram_verifier(fakes.make_verifier(RFC7677["password"], salt, RFC7677["iterations"]))
    assert parsed == scram.ScramVerifier(4096, salt, stored_key, server_key)
    auth_message = ",".join(
        (RFC7677["client_first_bare"], RFC7677["server_first"], RFC7677["client_final_without_proof"])
    ).encode()
    # ServerSignature = HMAC(ServerKey, AuthMessage)
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(server_signature).decode() == RFC7677["server_signature"]
    # ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and StoredKey = H(ClientKey)
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = base64.b64decode(RFC7677["client_proof"])
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_libpq_verifier_format_and_a_fresh_salt_each_time():
    verifier = fakes.libpq_encrypt("secret", "chat")
    assert re.fullmatch(r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=", verifier)
    assert fakes.libpq_encrypt("secret", "chat") != verifier, "libpq draws a new salt"
    assert scram.verifier_matches(verifier, "secret")
    assert not scram.verifier_matches(verifier, "secret ")


def test_libpq_verifier_names_the_algorithm_so_libpq_asks_the_server_nothing():
    calls = []

    class PGconn:
        def encrypt_password(self, passwd, user, algorithm=None):
            calls.append((passwd, user, algorithm))
            return b"SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5"

    class Conn:
        pgconn = PGconn()

    assert scram.libpq_verifier(Conn(), "p\u00e4ss", "chat") == "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5"
    assert calls == [("p\u00e4ss".encode(), b"chat", b"scram-sha-256")]


# Verifiers PostgreSQL 15.20 (mlstack/postgresql:recipe) made itself (CREATE ROLE ... PASSWORD '<plain>' with
# password_encryption = scram-sha-256, random salt), recorded from a run of
# tests/integration/test_db_checks.py::test_scram_verifier_agrees_with_postgresql.
PG_MADE = [
    (
        "plain-ascii-1",
        "SCRAM-SHA-256$4096:hgipiqbj0OyC1J3GF4vbMA==$O8v/Fyj2nTaHt6p9egIH0Pm8GTru9q5SMeGYRtAdg6A="
        ":6SW+KqHCAxVE8K+AacUeJdnTZZpY1sowLw7GHrefXvE=",
    ),
    (
        "mlstack-P\u00e4ssw\u00f6rd 1",
        "SCRAM-SHA-256$4096:5ZndbjktiNqdZZBl9WFa1g==$wsOxgUdUwiDLVdsXtE1BeJ+zpVy6SnkRka3cWT4XYA0="
        ":PpMwTuGaI/5ZQnW3Tf4IyN5ZxouN9s2SYbByCQ3QCQc=",
    ),
    (
        "I\u00adX \u2168 \u00aa",  # SASLprep: mapped to nothing, NFKC
        "SCRAM-SHA-256$4096:7dsuNB/NgT7IpoTo/90xhQ==$ZYLemQ9h1ST8BU5+mFlcN4JFWl39+EA6wHkBQvPHxMg="
        ":J6RhrpqGAO5VhRG7m07Y/s9YulUj2Hokft/kSGKlCy4=",
    ),
    (
        "a\u00a0b",  # SASLprep: non-ASCII space
        "SCRAM-SHA-256$4096:YstsrSaEHjDylcI+mj4p3A==$h8ZxuiqQzt9VajeVJC0/wK0RHLkQjL2rjcfnZNNBjBc="
        ":jg7lQZLoYEWuWn43HLij+wdryZYXupJRRHcyv/NVw+s=",
    ),
]


@pytest.mark.parametrize(("password", "verifier"), PG_MADE)
def test_scram_verifier_agrees_with_verifiers_postgresql_made(password, verifier):
    parsed = scram.parse_scram_verifier(verifier)
    assert parsed is not None
    assert fakes.make_verifier(password, parsed.salt, parsed.iterations) == verifier
    assert scram.verifier_matches(verifier, password)
    assert not scram.verifier_matches(verifier, password + " ")


# Passwords SASLprep changes, or leaves raw: libpq prepares them its own way, and the comparison must agree,
# or a role with such a password would be altered on every run.
TRICKY = [
    "plain ascii\t!",
    "mlstack-P\u00e4ssw\u00f6rd 1",
    "I\u00adX \u2168 \u00aa",
    "a\u00a0b",
    "\u00e4\u0007",
    "\u0627" + "1",
    "\u0627a\u0627",
    "\u0627\u0628",
    "\u00ad",
    "e\u0301",  # NFKC composes it
    "\ufb01x",  # NFKC: the fi ligature
]


@pytest.mark.parametrize("password", TRICKY)
def test_the_comparison_accepts_what_libpq_made(password):
    verifier = fakes.libpq_encrypt(password, "chat")
    assert scram.verifier_matches(verifier, password)
    assert not scram.verifier_matches(verifier, password + "x")


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("plain ascii\t!", b"plain ascii\t!"),  # ASCII passes unchanged, control characters included
        ("I\u00adX", b"IX"),  # soft hyphen is mapped to nothing
        ("a\u00a0b", b"a b"),  # non-ASCII space becomes a space
        ("\u2168", b"IX"),  # NFKC: ROMAN NUMERAL NINE
        ("\u00aa", b"a"),  # NFKC: FEMININE ORDINAL INDICATOR
        ("p\u00e4ss", "p\u00e4ss".encode()),
        ("\u00e4\u0007", "\u00e4\u0007".encode()),  # prohibited: the raw bytes are used
        ("\u0627" + "1", ("\u0627" + "1").encode()),  # bidi: RandALCat must end the string too
        ("\u0627a\u0627", ("\u0627a\u0627").encode()),  # bidi: RandALCat with LCat
        ("\u0627\u0628", "\u0627\u0628".encode()),  # a valid right-to-left string
        ("\u00ad", "\u00ad".encode()),  # maps to nothing at all: raw
    ],
)
def test_saslprep_follows_postgresql(password, prepared):
    assert scram.saslprep(password) == prepared


@pytest.mark.parametrize(
    ("stored", "kind", "matches"),
    [
        (fakes.make_verifier("right"), "scram-sha-256", True),
        (fakes.make_verifier("wrong"), "scram-sha-256", False),
        (fakes.make_verifier("right", SALT, 8192), "scram-sha-256", True),
        ("md5" + hashlib.md5(b"rightchat").hexdigest(), "md5", False),  # noqa: S324 - the legacy format under test
        (None, "none", False),
        ("", "none", False),
        ("SCRAM-SHA-256$4096:!!$x:y", "other", False),
    ],
)
def test_verifier_matches_and_kind(stored, kind, matches):
    assert scram.password_kind(stored) == kind
    assert scram.verifier_matches(stored, "right") is matches
