"""The digests behind spool folder names, metric ids and event ids (greentrack.store.digest):
equal to hashlib's and uuid5's, and a tracked process that uses them does not import hashlib."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import uuid

import pytest

from greentrack.store.digest import sha256_hex, uuid5_hex

SAMPLES = ["", "a", "salt\nsqlite:////tmp/x.db", "é ünïcode ✓", "x" * 10_000]


@pytest.mark.parametrize("text", SAMPLES)
def test_sha256_hex_is_hashlibs(text: str) -> None:
    data = text.encode()
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("text", SAMPLES)
def test_uuid5_hex_is_uuid5(text: str) -> None:
    ns = uuid.UUID("5b0c1e2a-8f4e-4d0a-9a39-6772656e7472")
    assert uuid5_hex(ns, text) == uuid.uuid5(ns, text).hex
    assert uuid5_hex(uuid.NAMESPACE_URL, text) == uuid.uuid5(uuid.NAMESPACE_URL, text).hex


@pytest.mark.skipif(
    importlib.util.find_spec("_sha256") is None and importlib.util.find_spec("_sha2") is None,
    reason="this CPython has no built-in SHA-256 module (digest falls back to hashlib)",
)
def test_the_digests_do_not_import_hashlib() -> None:
    code = (
        "import sys, uuid\n"
        "from greentrack.store.digest import sha256_hex, uuid5_hex\n"
        "sha256_hex(b'x'); uuid5_hex(uuid.NAMESPACE_URL, 'x')\n"
        "print('hashlib' in sys.modules, '_hashlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
