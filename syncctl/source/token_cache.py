"""Where ``syncctl login`` keeps an administrator's sign-in, and how it is protected.

One MSAL token cache per (tenant, client id), shared by every policy naming that pair:
``$XDG_CACHE_HOME/syncctl/msal/<tenant>-<client_id>.bin`` (default ``~/.cache``), persisted
by msal-extensions, which locks the file so concurrent runs refresh tokens safely. The OS's
protection is used where there is one (DPAPI, the macOS Keychain, the desktop keyring
through libsecret); a headless Linux host has none, so there the cache is a plain file only
its owner can read (0600, in a 0700 directory), checked after every write.

Next to it, ``<tenant>-<client_id>.json`` (the sign-in record) says which account
``syncctl login`` chose, in which directory, and for which scopes: no token, only names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# msal-extensions ships no type information (pyproject's overrides cover msal only).
from msal_extensions import (
    FilePersistence,
    PersistedTokenCache,
)
from msal_extensions.persistence import (
    BasePersistence,
    PersistenceError,
)

from syncctl.errors import SignInRequired
from syncctl.policy.model import Tenant

# Tenant ids are GUIDs or domain names; anything else is kept out of the file name.
_UNSAFE = re.compile(r"[^a-z0-9.-]")
FILE_PROTECTION = "a file only you can read: no OS keyring here"
# A sign-in record is a few hundred bytes; bounded because it is read on every run.
RECORD_LIMIT = 64 * 1024


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/syncctl/msal``; ``~/.cache`` when the variable is unset or not an
    absolute path (the XDG Base Directory rule)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "syncctl" / "msal"


def cache_stem(tenant_id: str, client_id: str) -> str:
    return f"{_UNSAFE.sub('_', tenant_id.lower())}-{_UNSAFE.sub('_', client_id.lower())}"


@dataclass(frozen=True, slots=True)
class SignInRecord:
    """What ``syncctl login`` chose: the account (MSAL's ``home_account_id``), its
    username, the directory it signed in to (the id token's ``tid``) and the scopes asked."""

    home_account_id: str
    username: str
    directory_id: str
    scopes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "home_account_id": self.home_account_id,
            "username": self.username,
            "directory_id": self.directory_id,
            "scopes": list(self.scopes),
        }


class PrivateFilePersistence(FilePersistence):  # type: ignore[misc]
    """msal-extensions' plain file, kept owner-only: the directory 0700, the file 0600 before
    a byte is written (an older file with a looser mode is tightened first), checked after."""

    is_encrypted = False

    def __init__(self, location: Path) -> None:
        private_directory(location.parent)
        super().__init__(str(location))

    def save(self, content: str) -> None:
        location = self.get_location()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(location, flags, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(descriptor, 0o600)
            handle.write(content)
        check_private(Path(location))


def private_directory(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sys.platform != "win32" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o700)


def check_private(path: Path) -> None:
    """Raise unless only the owner can read ``path`` (POSIX; Windows uses DPAPI instead)."""
    if sys.platform == "win32":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SignInRequired(
            f"token cache {path} is readable by others (mode {mode:04o}) and was not trusted",
            logout_first=True,
        )


class TokenCacheStore:
    """The token cache and sign-in record of one (tenant, client id)."""

    def __init__(self, tenant: Tenant, *, directory: Path | None = None) -> None:
        assert tenant.client_id is not None
        self.tenant = tenant
        self.directory = directory or cache_dir()
        stem = cache_stem(tenant.id, tenant.client_id)
        self.path = self.directory / f"{stem}.bin"
        self.record_path = self.directory / f"{stem}.json"
        self._persistence: BasePersistence | None = None
        self.protection = ""

    def persistence(self) -> BasePersistence:
        if self._persistence is None:
            self._persistence, self.protection = _persistence(self.path, self.tenant)
        return self._persistence

    @property
    def encrypted(self) -> bool:
        return bool(getattr(self.persistence(), "is_encrypted", False))

    def exists(self) -> bool:
        return self.path.exists()

    def open(self) -> PersistedTokenCache:
        """The cache for MSAL, checked first: one that cannot be read or decrypted, that is
        not a token cache, or that others can read, is an error naming the fix (MSAL would
        otherwise retry the read for a second and then fail with a parser's message)."""
        persistence = self.persistence()
        cache = PersistedTokenCache(persistence)
        if self.path.exists():
            if not self.encrypted:
                check_private(self.path)
            content = self._load(persistence)
            if content:
                try:
                    cache.deserialize(content)
                except ValueError:
                    raise self._unreadable("not an MSAL token cache") from None
        return cache

    def _load(self, persistence: BasePersistence) -> str:
        try:
            content = persistence.load()
        except PersistenceError as exc:
            if type(exc).__name__ == "PersistenceNotFound":
                return ""
            raise self._unreadable(_reason(exc)) from None
        except UnicodeDecodeError:
            raise self._unreadable("not UTF-8 text") from None
        except OSError as exc:
            raise self._unreadable(_reason(exc)) from None
        except Exception as exc:  # DPAPI, Keychain and libsecret raise their own types
            raise self._unreadable(f"{type(exc).__name__}: {_reason(exc)}") from None
        if isinstance(content, bytes):
            try:
                return content.decode("utf-8")
            except UnicodeDecodeError:
                raise self._unreadable("not UTF-8 text") from None
        return str(content or "")

    def _unreadable(self, why: str) -> SignInRequired:
        return SignInRequired(
            f"tenant {self.tenant.id}: token cache {self.path} cannot be read ({why})",
            logout_first=True,
        )

    def read_record(self) -> SignInRecord | None:
        """The sign-in record, None when there is none; a damaged one is an error."""
        try:
            with self.record_path.open("rb") as handle:
                data = handle.read(RECORD_LIMIT + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unreadable_record(_reason(exc)) from None
        try:
            document = json.loads(data) if len(data) <= RECORD_LIMIT else {}
            record = SignInRecord(
                home_account_id=str(document["home_account_id"]),
                username=str(document["username"]),
                directory_id=str(document["directory_id"]),
                scopes=tuple(str(s) for s in document["scopes"]),
            )
        except (ValueError, TypeError, KeyError):
            raise self._unreadable_record("not a syncctl sign-in record") from None
        return record

    def _unreadable_record(self, why: str) -> SignInRequired:
        return SignInRequired(
            f"tenant {self.tenant.id}: sign-in record {self.record_path} cannot be read ({why})",
            logout_first=True,
        )

    def write_record(self, record: SignInRecord) -> None:
        private_directory(self.directory)
        temporary = self.record_path.with_suffix(".json.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(temporary, flags, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(record.as_json(), handle, indent=2, sort_keys=True)
            handle.write("\n")
        # Replaced atomically: a concurrent run reads the old record or the new one.
        os.replace(temporary, self.record_path)

    def remove(self) -> list[Path]:
        """Forget the sign-in: the keyring entry (an encrypted cache is emptied) and the
        files. Returns the files removed; nothing there is not an error."""
        removed: list[Path] = []
        if self.path.exists():
            persistence = self.persistence()
            if self.encrypted:
                # The secret lives in the OS store, the file only signals changes: empty it.
                # An unusable store still loses its file below.
                with contextlib.suppress(Exception):
                    persistence.save("{}")
        for path in (self.path, self.record_path, Path(f"{self.path}.lockfile")):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            if path.suffix != ".lockfile":
                removed.append(path)
        return removed


def _persistence(location: Path, tenant: Tenant) -> tuple[BasePersistence, str]:
    """The OS's encrypted store where it has one, else the owner-only file; and how to say
    which (``login`` prints it)."""
    private_directory(location.parent)
    if sys.platform.startswith("win"):
        from msal_extensions import FilePersistenceWithDataProtection

        return FilePersistenceWithDataProtection(str(location)), "encrypted: Windows DPAPI"
    if sys.platform == "darwin":
        from msal_extensions import KeychainPersistence

        account = location.stem
        return KeychainPersistence(str(location), "syncctl", account), "encrypted: macOS Keychain"
    if sys.platform.startswith("linux"):
        try:
            from msal_extensions import LibsecretPersistence

            # The constructor makes a trial save and load: it fails without PyGObject,
            # without a D-Bus session (SSH, containers, cron) or without an unlocked keyring.
            persistence = LibsecretPersistence(
                str(location),
                schema_name="syncctl.token_cache",
                attributes={"tenant": tenant.id, "client_id": tenant.client_id or ""},
            )
        except Exception:  # ImportError, GLib errors, RuntimeError: no usable keyring
            pass
        else:
            return persistence, "encrypted: the desktop keyring (libsecret)"
    return PrivateFilePersistence(location), FILE_PROTECTION


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
