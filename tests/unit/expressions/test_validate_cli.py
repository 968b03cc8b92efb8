"""Expression problems reach users through the real `syncctl validate` binary, with the
column inside the expression added to the YAML position of the string."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SYNCCTL = Path(sys.executable).parent / "syncctl"

POLICY = """\
version: 1
name: expr-test
tenant:
  id: contoso.onmicrosoft.com
  snapshot: snap.json
source:
  scope_groups: [Users]
target:
  type: sqlite
  path: db.sqlite
mappings:
  user:
    attributes:
      userName: "[userPrincipalName]"
      nickName: "Join(\\".\\", Tolower([mailNickname]))"
      title: "Guid()"
      employeeNumber: {value: "Guid()", apply: on_create}
"""


def test_validate_reports_expression_problems_with_columns(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    result = subprocess.run(
        [str(SYNCCTL), "validate", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    # line 15: the string opens at column 17; expression column 11 is file column 30 because
    # each YAML escape \" takes two characters of the file for one of the expression
    assert (
        f'{policy}:15:30: error: mappings.user.attributes.nickName: unknown function "Tolower" '
        '(did you mean "ToLower"? function names are case-sensitive)'
    ) in output
    assert (
        f"{policy}:16:15: error: mappings.user.attributes.title: Guid() gives a new value" in output
    )
    assert "employeeNumber" not in output  # Guid() with apply: on_create is fine
