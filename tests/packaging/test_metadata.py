"""What a package index shows: the licence, the project links and classifiers of the built
wheel, and a README whose links work there (PyPI renders README.md with no repository around
it, so a relative link leads nowhere)."""

from __future__ import annotations

import email
import hashlib
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.cli.binary import REPO
from tests.packaging.source_tree import commit_copy

REPOSITORY_URL = "https://github.com/syncctl/syncctl"
# The Apache License 2.0 exactly as apache.org publishes it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
# Markdown inline links and images, reference definitions, and HTML href/src attributes.
LINK = re.compile(
    r"\]\(\s*<?([^)\s>]+)"
    r"|^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)"
    r"|(?:href|src)\s*=\s*[\"']([^\"']+)",
    re.MULTILINE,
)


def readme_links() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    # Code blocks hold shell and YAML, whose brackets are not links.
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return [next(g for g in match.groups() if g) for match in LINK.finditer(prose)]


def test_readme_links_are_absolute_and_lead_to_files_of_this_repository() -> None:
    links = readme_links()
    assert len(links) >= 10, links  # the documentation table at least: the regex finds links
    relative = [link for link in links if not re.match(r"(https://|mailto:|#)", link)]
    assert relative == [], f"relative links break on PyPI: {relative}"
    for link in links:
        blob = re.fullmatch(rf"{REPOSITORY_URL}/(?:blob|tree)/main/([^#?]+)(?:#.*)?", link)
        if blob:
            assert (REPO / blob.group(1)).exists(), f"{link}: no such file in the repository"
    assert f"{REPOSITORY_URL}/blob/main/docs/deploy.md" in links


def test_the_link_finder_finds_relative_links() -> None:
    # The guard above is only as good as the regex: it must see each form of link.
    text = '[a](docs/a.md) ![b](img/b.png)\n[c]: docs/c.md\n<a href="d.md">d</a>\n'
    found = [next(g for g in m.groups() if g) for m in LINK.finditer(text)]
    assert found == ["docs/a.md", "img/b.png", "docs/c.md", "d.md"]


def test_license_is_the_apache_license_2_0() -> None:
    data = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(data).hexdigest() == APACHE_2_SHA256
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"


def test_the_built_wheel_carries_licence_links_and_classifiers(tmp_path: Path) -> None:
    source = commit_copy(tmp_path / "source")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", "dist", "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (source / "dist").glob("syncctl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert hashlib.sha256(archive.read(license_name)).hexdigest() == APACHE_2_SHA256
        assert {"syncctl/schemas/policy.schema.json", "syncctl/cli/schema.py"} <= set(names)
    assert metadata["License-Expression"] == "Apache-2.0"
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL", []))
    assert {"Homepage", "Documentation", "Repository", "Issues"} <= set(urls)
    assert urls["Repository"] == REPOSITORY_URL
    assert all(url.startswith(REPOSITORY_URL) for url in urls.values())
    classifiers = metadata.get_all("Classifier", [])
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert all(" :: " in c and not c.startswith("License ::") for c in classifiers)
    assert metadata["Keywords"] and metadata["Author"]
    assert "## Install and integrate" in str(metadata.get_payload())
