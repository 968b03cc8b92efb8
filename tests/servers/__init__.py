"""Real servers the tests start themselves: PostgreSQL (Debian's binaries), Azurite (npm)."""
