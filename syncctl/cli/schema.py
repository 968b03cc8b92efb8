"""``syncctl schema``: where the installed JSON Schemas are, for editors outside this repository."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import click

from syncctl.errors import SyncctlError
from syncctl.schemafiles import load_schema

# The documents syncctl reads and writes, each with the schema shipped in syncctl/schemas/.
SCHEMAS = ("policy", "plan", "snapshot")


def schema_path(name: str) -> Path:
    """The installed file itself (not a copy): an editor setting that names it keeps working
    until syncctl is upgraded in place, and then points at the upgraded schema."""
    resource = resources.files("syncctl").joinpath(f"schemas/{name}.schema.json")
    # A zipped or otherwise virtual install has no file an editor could open; a temporary
    # extraction would vanish when this command exits, so say so instead of printing it.
    if not isinstance(resource, Path) or not resource.is_file():
        raise SyncctlError(
            f"the {name} schema is not installed as a file here ({resource}); "
            f"use `syncctl schema --content {name} > {name}.schema.json`"
        )
    return resource.resolve()


@click.command()
@click.argument("name", type=click.Choice(SCHEMAS), default="policy")
@click.option(
    "--content", is_flag=True, help="Print the schema itself instead of the path of its file."
)
def schema(name: str, content: bool) -> None:
    """Print the absolute path of an installed JSON Schema: NAME is policy (the default),
    plan (plan files, `plan -o`) or snapshot (`export`).

    Point your editor at it, for example with this first line in a policy file:

    \b
        # yaml-language-server: $schema=PATH
    """
    if content:
        click.echo(json.dumps(load_schema(name), indent=2, ensure_ascii=False))
        return
    click.echo(str(schema_path(name)))
