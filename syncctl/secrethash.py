"""Salted hashes of secrets syncctl wrote (writeback passwords), so a later run can tell
whether the secret changed without keeping it. scrypt, because a state file that leaks must
not make the password cheap to guess."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

_N, _R, _P = 2**14, 8, 1  # scrypt's interactive-login parameters: ~16 MiB, a few ms


@dataclass(frozen=True, slots=True)
class SecretDigest:
    salt: str  # base64
    digest: str  # base64 scrypt(secret, salt)

    def matches(self, secret: str) -> bool:
        expected = _scrypt(secret, base64.b64decode(self.salt))
        return hmac.compare_digest(expected, base64.b64decode(self.digest))


def digest_secret(secret: str) -> SecretDigest:
    salt = os.urandom(16)
    return SecretDigest(
        base64.b64encode(salt).decode("ascii"),
        base64.b64encode(_scrypt(secret, salt)).decode("ascii"),
    )


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8", "surrogatepass"), salt=salt, n=_N, r=_R, p=_P, dklen=32
    )
