"""Two applies of the same policy at once: one runs, the other exits 3 naming the holder (or,
with --lock-timeout, waits and then finds nothing to do). The database stays consistent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.sqlite.dbstate import canonical, check_integrity
from tests.integration.sqlite.tenant import make_tenant, write_fixture

SYNCCTL = str(Path(sys.executable).with_name("syncctl"))


Run = tuple[subprocess.Popen[bytes], Path]


def start(policy: Path, *extra: str) -> Run:
    # Output goes to files, not pipes: a full pipe would block the lock holder while the test
    # waits on the other process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    base = policy.parent / f"run-{len(list(policy.parent.glob('run-*.out')))}"
    with open(f"{base}.out", "wb") as out, open(f"{base}.err", "wb") as err:
        process = subprocess.Popen(
            [SYNCCTL, "apply", policy.name, "--auto-approve", *extra],
            cwd=policy.parent,
            env=env,
            stdout=out,
            stderr=err,
        )
    return process, base


def finish(run: Run) -> tuple[int, str, str]:
    process, base = run
    try:
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = Path(f"{base}.out").read_text()
    err = Path(f"{base}.err").read_text()
    return process.returncode, out, err


@pytest.fixture
def tenant_policy(tmp_path: Path) -> tuple[Path, Path]:
    tenant = make_tenant(400, 10, 1200, seed=9)
    reference = write_fixture(tmp_path / "reference", tenant)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    subprocess.run(
        [SYNCCTL, "apply", reference.name, "--auto-approve"],
        cwd=reference.parent,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return write_fixture(tmp_path / "raced", tenant), reference


def test_second_apply_exits_3_or_finds_nothing(tenant_policy: tuple[Path, Path]) -> None:
    policy, reference = tenant_policy
    first, second = start(policy), start(policy)
    results = sorted([finish(first), finish(second)], key=lambda r: r[0])
    codes = [code for code, _, _ in results]
    assert codes in ([0, 3], [0, 0]), results
    if codes == [0, 3]:
        assert "is locked by" in results[1][2]
    else:  # the second started after the first released the lock
        assert "Nothing to apply." in results[0][1] + results[1][1]
    db = policy.parent / "generated.db"
    check_integrity(db)
    if codes == [0, 3]:
        assert canonical(db) == canonical(reference.parent / "generated.db")


def test_with_lock_timeout_the_second_waits_then_has_nothing_to_do(
    tenant_policy: tuple[Path, Path],
) -> None:
    policy, reference = tenant_policy
    first = start(policy, "--lock-timeout", "60s")
    second = start(policy, "--lock-timeout", "60s")
    results = [finish(first), finish(second)]
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = [out for _, out, _ in results]
    assert sum("Nothing to apply." in out for out in outputs) == 1
    db = policy.parent / "generated.db"
    check_integrity(db)
    assert canonical(db) == canonical(reference.parent / "generated.db")
