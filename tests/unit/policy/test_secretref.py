"""``{file: PATH}`` secrets: a regular file of at most 64 KiB, whatever the policy names."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from syncctl import redaction
from syncctl.errors import AuthError, SecretError
from syncctl.policy.model import SecretRef
from syncctl.secretfile import SECRET_FILE_LIMIT, read_small_file


@pytest.fixture(autouse=True)
def no_remembered_secrets() -> None:
    redaction.forget_all()


def reveal_within(ref: SecretRef, seconds: float = 5.0) -> str | BaseException:
    """The secret or the exception, failing the test instead of hanging on a fifo."""
    outcome: list[str | BaseException] = []

    def run() -> None:
        try:
            outcome.append(ref.reveal())
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"reveal() of {ref} hung"
    return outcome[0]


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever

    outcome = reveal_within(SecretRef(file=fifo))

    assert isinstance(outcome, SecretError)
    assert str(outcome) == f"secret file {fifo} is a fifo, not a regular file"


# /dev/null rather than /dev/zero: the same check refuses both, and should it ever regress this
# test fails on an empty secret instead of eating the machine's memory.
@pytest.mark.parametrize(
    ("path", "kind"), [("/dev/null", "a character device"), (".", "a directory")]
)
def test_devices_and_directories_are_refused(tmp_path: Path, path: str, kind: str) -> None:
    target = tmp_path if path == "." else Path(path)
    if not target.exists():
        pytest.fail(f"{target} is needed by this test")

    outcome = reveal_within(SecretRef(file=target))

    assert isinstance(outcome, SecretError)
    assert str(outcome) == f"secret file {target} is {kind}, not a regular file"


def test_a_file_over_64_kib_is_refused_without_quoting_it(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"s3cr3t" * (SECRET_FILE_LIMIT // 6 + 1))

    outcome = reveal_within(SecretRef(file=big))

    assert isinstance(outcome, SecretError)
    assert str(outcome) == f"secret file {big} is larger than 64 KiB"
    assert "s3cr3t" not in str(outcome)


def test_exactly_64_kib_is_read_and_remembered_for_redaction(tmp_path: Path) -> None:
    exact = tmp_path / "exact"
    exact.write_bytes(b"k" * SECRET_FILE_LIMIT)

    value = SecretRef(file=exact).reveal()

    assert value == "k" * SECRET_FILE_LIMIT
    assert redaction.mask(f"Authorization: Bearer {value}") == "Authorization: Bearer (redacted)"


def test_file_and_env_secrets_are_stripped_and_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("  file-secret-123\n")
    monkeypatch.setenv("SOME_TOKEN", "env-secret-456")

    assert SecretRef(file=tmp_path / "token").reveal() == "file-secret-123"
    assert SecretRef(env="SOME_TOKEN").reveal() == "env-secret-456"
    assert redaction.mask("a file-secret-123 b env-secret-456") == "a (redacted) b (redacted)"


def test_missing_empty_and_binary_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00secret")

    messages = []
    for name in ("missing", "empty", "binary", "x" * 300):
        with pytest.raises(SecretError) as caught:
            SecretRef(file=tmp_path / name).reveal()
        messages.append(str(caught.value))

    assert messages[:3] == [
        f"cannot read secret file {tmp_path / 'missing'}: No such file or directory",
        f"secret file {tmp_path / 'empty'} is empty",
        f"secret file {tmp_path / 'binary'} is not UTF-8 text",
    ]
    assert messages[3].startswith(f"cannot read secret file {tmp_path / ('x' * 300)}: file name")
    assert all("\n" not in message for message in messages)


def test_read_small_file_raises_the_callers_error_type(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_bytes(b"x" * 11)

    assert read_small_file(tmp_path / "cert.pem", 11, "certificate", AuthError) == b"x" * 11
    with pytest.raises(AuthError, match=r"^certificate .*cert\.pem is larger than 10 bytes$"):
        read_small_file(tmp_path / "cert.pem", 10, "certificate", AuthError)
