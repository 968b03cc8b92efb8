"""HTTP pieces both remote peers share: Microsoft Graph (and sign-in) and SCIM targets."""

from __future__ import annotations

import email.utils
import ssl
import time
from pathlib import Path

import certifi


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verified TLS trusting the system's and certifi's CAs plus ``ca_bundle`` (proxies,
    private CAs, the emulator). Raises OSError / ssl.SSLError for an unusable bundle."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait (RFC 9110 §10.2.3): delta-seconds (Graph sends fractions too) or an
    HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
