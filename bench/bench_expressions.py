"""Benchmark: map 100,000 users x 15 mappings, and run scoping filters over them.

Run: .venv/bin/python bench/bench_expressions.py [USERS]
Prints the figures and writes them to bench/results/expressions.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from syncctl.expressions import compile_filters
from syncctl.mapping import Mapper
from syncctl.model import ObjectKind
from syncctl.policy.model import AttributeMapping, FilterClause, FilterOp, ObjectMappings

# A realistic mix: mostly direct references, as Entra's default mapping, plus common functions.
MAPPINGS = ObjectMappings(
    attributes=(
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("displayName", "[displayName]"),
        AttributeMapping("name.givenName", "[givenName]"),
        AttributeMapping("name.familyName", "[surname]"),
        AttributeMapping('emails[type eq "work"].value', "Coalesce([mail], [userPrincipalName])"),
        AttributeMapping("title", "[jobTitle]"),
        AttributeMapping("department", "[department]", default="Unassigned"),
        AttributeMapping("nickName", "ToLower([mailNickname])"),
        AttributeMapping("preferredLanguage", "[preferredLanguage]"),
        AttributeMapping("employeeNumber", "IgnoreFlowIfNullOrEmpty([employeeId])"),
        AttributeMapping("costCenter", 'Switch([companyName], "CC-0", "Contoso", "CC-1")'),
        AttributeMapping("name.formatted", 'Join(" ", [givenName], [surname])'),
        AttributeMapping("division", "Left([officeLocation], 3)"),
        AttributeMapping('phoneNumbers[type eq "mobile"].value', "[mobilePhone]"),
        AttributeMapping("manager", "[manager]"),
    )
)

# Every mapping calls functions, several nested: a pessimistic mix.
HEAVY = ObjectMappings(
    attributes=(
        AttributeMapping("userName", "ToLower([userPrincipalName])"),
        AttributeMapping("displayName", 'PCase(Join(" ", [givenName], [surname]))'),
        AttributeMapping("name.givenName", "NormalizeDiacritics([givenName])"),
        AttributeMapping("name.familyName", "ToUpper([surname])"),
        AttributeMapping('emails[type eq "work"].value', "Coalesce([mail], [userPrincipalName])"),
        AttributeMapping("title", 'IIF(IsPresent([jobTitle]), [jobTitle], "Staff")'),
        AttributeMapping("department", 'Switch([department], "Other", "Sales", "S", "R&D", "R")'),
        AttributeMapping("nickName", 'Replace([mailNickname], , "[0-9]+", , "", , )'),
        AttributeMapping("preferredLanguage", "Left([preferredLanguage], 2)"),
        AttributeMapping("employeeNumber", "IgnoreFlowIfNullOrEmpty(CStr([employeeId]))"),
        AttributeMapping("costCenter", 'Append(Mid([companyName], 1, 3), "-CC")'),
        AttributeMapping("name.formatted", 'Join(", ", [surname], [givenName])'),
        AttributeMapping("division", 'Word([officeLocation], 2, " ")'),
        AttributeMapping('phoneNumbers[type eq "mobile"].value', "StripSpaces([mobilePhone])"),
        AttributeMapping(
            "organization", 'Replace([userPrincipalName], "@contoso.com", , , "", , )'
        ),
    )
)

FILTERS = (
    (
        FilterClause("department", FilterOp.NOT_EQUALS, "Contractors"),
        FilterClause("jobTitle", FilterOp.IS_NOT_NULL),
    ),
    (FilterClause("userPrincipalName", FilterOp.REGEX_MATCH, r"^svc-"),),
)


def users(count: int) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    for i in range(count):
        out.append(
            (
                f"00000000-0000-0000-0000-{i:012d}",
                {
                    "id": f"00000000-0000-0000-0000-{i:012d}",
                    "userPrincipalName": f"user{i}@contoso.com",
                    "displayName": f"User {i}",
                    "givenName": f"Given{i}",
                    "surname": f"Sur{i}",
                    "mail": None if i % 5 == 0 else f"user{i}@contoso.com",
                    "jobTitle": "Engineer" if i % 3 else None,
                    "department": ["Sales", "Contractors", None][i % 3],
                    "mailNickname": f"User{i}",
                    "preferredLanguage": "en-US",
                    "employeeId": str(i) if i % 2 else None,
                    "companyName": "Contoso",
                    "officeLocation": "Building 7",
                    "mobilePhone": "+1 555 0100",
                    "manager": "00000000-0000-0000-0000-000000000001",
                },
            )
        )
    return out


def _time_mapping(mapper: Mapper, data: list[tuple[str, dict[str, object]]]) -> list[float]:
    # CPU seconds of this process: the machine is shared, so wall time mostly measures the
    # neighbours (the load average is recorded beside the figures).
    runs = []
    for _ in range(3):
        started = time.process_time()
        for source_id, attributes in data:
            mapper.map(source_id, attributes)
        runs.append(time.process_time() - started)
    return runs


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = users(count)

    started = time.perf_counter()
    mapper = Mapper("bench", MAPPINGS, ObjectKind.USER)
    compile_seconds = time.perf_counter() - started
    runs = _time_mapping(mapper, data)
    map_seconds = min(runs)
    heavy_runs = _time_mapping(Mapper("bench-heavy", HEAVY, ObjectKind.USER), data)

    in_scope = compile_filters(FILTERS)
    started = time.process_time()
    kept = sum(1 for _, attributes in data if in_scope(attributes))
    filter_seconds = time.process_time() - started

    results = {
        "users": count,
        "mappings": len(MAPPINGS.attributes),
        "compile_seconds": round(compile_seconds, 6),
        "map_seconds_best_of_3": round(map_seconds, 3),
        "map_seconds_runs": [round(r, 3) for r in runs],
        "evaluations_per_second": round(count * len(MAPPINGS.attributes) / map_seconds),
        "microseconds_per_user": round(map_seconds / count * 1e6, 2),
        "heavy_map_seconds_best_of_3": round(min(heavy_runs), 3),
        "heavy_map_seconds_runs": [round(r, 3) for r in heavy_runs],
        "filter_seconds": round(filter_seconds, 3),
        "filter_users_in_scope": kept,
        "cpu_seconds_measured": True,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    for key, value in results.items():
        print(f"{key:28} {value}")
    out = Path(__file__).parent / "results" / "expressions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
