"""Salted hashes of secrets syncctl wrote (writeback passwords), so a later run can tell
whether the secret changed without keeping it. scrypt, because a state file that leaks must
not make the password cheap to guess."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, slots=True)
class PasswordSet:
    """What the state keeps of a password syncctl set in Entra: a digest of the value, and
    Entra's ``lastPasswordChangeDateTime`` read back after the write (a later change means
    someone reset it in Entra)."""

    digest: SecretDigest
    changed_at: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "salt": self.digest.salt,
            "digest": self.digest.digest,
            "changed_at": self.changed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PasswordSet:
        changed = data.get("changed_at")
        return cls(
            SecretDigest(str(data["salt"]), str(data["digest"])),
            None if changed is None else str(changed),
        )
