"""A local stand-in for Microsoft Graph v1.0 and the Microsoft identity platform.

Used by the tests, the benchmarks and ``syncctl emulator serve``. It shares no code with
``syncctl.source`` (the Graph client), so a misunderstanding of Graph cannot hide in both.
Needs the ``emulator`` extra (``pip install 'syncctl[emulator]'``) for its test CA.
"""

from __future__ import annotations

from syncctl.emulator.server import Emulator, running_emulator
from syncctl.emulator.tenant import EmulatorTenant, generate_tenant, load_tenant

__all__ = ["Emulator", "EmulatorTenant", "generate_tenant", "load_tenant", "running_emulator"]
