"""SHA-256 and name-based UUIDs without :mod:`hashlib`'s start-up cost: the digests of spool
folder names, metric ids and event ids.

``import hashlib`` (also what :func:`uuid.uuid5` does at its first call) loads OpenSSL's libcrypto
(``_hashlib``) and builds its algorithm table: 3-5 ms of a tracked run's cold start on a small VM,
for a few short digests. CPython's own SHA-256 and SHA-1 modules (``_sha256`` up to 3.11,
``_sha2`` from 3.12, ``_sha1``: what :mod:`hashlib` falls back to when OpenSSL lacks an
algorithm) import in ~0.3 ms and compute the same digests (FIPS 180-4; ``tests/test_digest.py``
checks both functions against :mod:`hashlib` and :func:`uuid.uuid5`). Where CPython was built
without them, :mod:`hashlib` is used.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["sha256_hex", "uuid5_hex"]

_sha256: Any
_sha1: Any
try:
    from _sha256 import sha256 as _sha256  # CPython <= 3.11
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha2 import sha256 as _sha256  # CPython >= 3.12
    except ImportError:
        from hashlib import sha256 as _sha256
try:
    from _sha1 import sha1 as _sha1
except ImportError:  # pragma: no cover - depends on the interpreter
    from hashlib import sha1 as _sha1


def sha256_hex(data: bytes) -> str:
    """The SHA-256 digest of ``data`` as 64 lowercase hex digits."""
    return str(_sha256(data).hexdigest())


def uuid5_hex(namespace: uuid.UUID, name: str) -> str:
    """``uuid.uuid5(namespace, name).hex`` (RFC 4122 version 5: SHA-1 of the namespace's bytes
    and the UTF-8 name), 32 lowercase hex digits."""
    digest = _sha1(namespace.bytes + name.encode("utf-8")).digest()
    return uuid.UUID(bytes=digest[:16], version=5).hex
