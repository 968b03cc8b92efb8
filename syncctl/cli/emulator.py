"""``syncctl emulator serve``: run the Graph + sign-in emulator for trying policies offline."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from syncctl.emulator import Emulator, EmulatorTenant

SECRET_ENV = "SYNCCTL_EMULATOR_SECRET"
PARSE_TOKEN = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
MISSING_EXTRA = "the emulator needs the 'emulator' extra: pip install 'syncctl[emulator]'"
# A second app granted only this, so anyone can see Graph's 403 answers (getByIds, groups...).
RESTRICTED_ROLES = ("User.Read.All",)


@click.group()
def emulator() -> None:
    """A local Microsoft Graph + sign-in emulator over TLS (for tests and demos)."""


@emulator.command()
@click.option(
    "--tenant",
    "tenant_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tenant document (JSON) to serve instead of a generated tenant.",
)
@click.option(
    "--users",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Users in the generated tenant.",
)
@click.option(
    "--groups",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Groups in the generated tenant.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Generator seed.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the test CA certificate here (default: a temporary file).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds added to every request (simulate a distant tenant).",
)
@click.option(
    "--throttle",
    "resource_units",
    type=click.IntRange(min=1),
    help="Resource units per 10 s before 429 (Microsoft: 3500, 5000 or 8000 by tenant size).",
)
@click.option(
    "--control",
    is_flag=True,
    help="Also serve /_emulator/ (request log, tenant changes) for a harness; prints a key.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON line (URLs, CA file, credential) instead of text.",
)
def serve(
    *,
    tenant_file: Path | None,
    users: int,
    groups: int,
    seed: int,
    port: int,
    ca_file: Path | None,
    latency: float,
    resource_units: int | None,
    control: bool,
    as_json: bool,
) -> None:
    """Serve a tenant until interrupted (Ctrl+C or SIGTERM)."""
    try:
        from syncctl.emulator import Emulator, generate_tenant, load_tenant
    except ImportError as exc:
        raise click.ClickException(MISSING_EXTRA) from exc

    tenant = load_tenant(tenant_file) if tenant_file else generate_tenant(users, groups, seed)
    try:
        server = Emulator(tenant, port=port, ca_path=ca_file.resolve() if ca_file else None)
    except OSError as exc:
        where = exc.filename if exc.filename else f"127.0.0.1:{port}"
        raise click.ClickException(f"cannot start the emulator: {where}: {exc.strerror}") from exc
    server.latency = latency
    server.throttle(resource_units)
    restricted = server.add_application(RESTRICTED_ROLES)
    control_key = server.enable_control() if control else None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    server.start()
    try:
        if as_json:
            click.echo(_json_line(server, restricted, control_key))
        else:
            click.echo(_describe(server, tenant, restricted, control_key))
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
        if not as_json:
            click.echo("emulator stopped", err=True)


def _json_line(server: Emulator, restricted: tuple[str, str], control_key: str | None) -> str:
    client_id, client_secret = restricted
    control = {"control": {"url": f"{server.authority}/_emulator", "key": control_key}}
    return json.dumps(
        {
            **(control if control_key else {}),
            "authority": server.authority,
            "graph": server.graph,
            "ca_bundle": str(server.ca_bundle),
            "tenant_id": server.tenant_id,
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "restricted_client": {
                "client_id": client_id,
                "client_secret": client_secret,
                "roles": list(server.roles(client_id)),
            },
        },
        sort_keys=True,
    )


def _describe(
    server: Emulator, tenant: EmulatorTenant, restricted: tuple[str, str], control_key: str | None
) -> str:
    ca = server.ca_bundle
    control = (
        "Control endpoint (request log, tenant changes; see docs/emulator.md):\n"
        f"  curl -s --cacert {ca} -H 'Authorization: Bearer {control_key}' \\\n"
        f"    {server.authority}/_emulator/requests\n\n"
        if control_key
        else ""
    )
    token_url = f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token"
    return f"""\
syncctl emulator: tenant {server.tenant_id} ({len(tenant.users)} users, {len(tenant.groups)} groups)
  authority   {server.authority}
  graph       {server.graph}/v1.0
  CA bundle   {ca}
  client id   {server.client_id}
  device login {server.device_login_url}

The emulator's own test credential (not a real secret), granted {", ".join(server.roles())}:
  export {SECRET_ENV}='{server.client_secret}'

A second app granted only {", ".join(server.roles(restricted[0]))}, to try Graph's 403 answers:
  client id   {restricted[0]}
  secret      {restricted[1]}

Policy snippet:
tenant:
  id: {server.tenant_id}
  client_id: {server.client_id}
  credential:
    client_secret: {{env: {SECRET_ENV}}}
  endpoints:
    authority: {server.authority}
    graph: {server.graph}
  ca_bundle: {ca}

Try it:
  TOKEN=$(curl -s --cacert {ca} {token_url} \\
    -d grant_type=client_credentials -d client_id={server.client_id} \\
    --data-urlencode client_secret="${SECRET_ENV}" \\
    -d scope=https://graph.microsoft.com/.default | {PARSE_TOKEN})
  curl -s --cacert {ca} -H "Authorization: Bearer $TOKEN" \\
    '{server.graph}/v1.0/users?$select=id,displayName&$top=5'

{control}Serving until Ctrl+C."""
