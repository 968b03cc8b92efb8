"""A seeded generator of realistic tenants: the same arguments always give the same tenant.

Fixed groups the demo and tests rely on (always present, whatever ``groups`` says):
- "Password Manager Users": the scope group, with a 3-level nested chain below it;
- "Vault Admins"; "PM-Engineering", "PM-Finance", "PM-Support"; "PM-Archive" (empty);
- "All Company": a Microsoft 365 group holding every member user (the very large group).
The remaining groups are department security groups and Microsoft 365 project groups.

Groups are not only users and groups: the scope group, the deepest nested group, "Dept - IT"
and "All Company" also hold a few devices, service principals and organisational contacts
(group-list-members.md). Those come from their own seeded generator, after everything else,
so adding them left every user and group of a seed as it was; their number grows slowly with
the tenant (a 100,000-user tenant gets a few dozen), keeping large tenants cheap.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from syncctl.emulator.responses import utc_iso
from syncctl.emulator.tenant import EmulatorTenant

FIRST_NAMES = [
    "Adele",
    "Alex",
    "Allan",
    "Amara",
    "Ana",
    "Anders",
    "Bianca",
    "Brian",
    "Carmen",
    "Chen",
    "Chloe",
    "Christie",
    "Dana",
    "Daniel",
    "Debra",
    "Diego",
    "Elena",
    "Emeka",
    "Emily",
    "Enrico",
    "Farah",
    "Fatima",
    "Gabriel",
    "Grady",
    "Hana",
    "Henrietta",
    "Hugo",
    "Isaiah",
    "Ines",
    "Irvin",
    "Jakob",
    "Johanna",
    "Joni",
    "Jun",
    "Kai",
    "Katarzyna",
    "Lee",
    "Leila",
    "Lidia",
    "Lynne",
    "Malik",
    "Maria",
    "Megan",
    "Miriam",
    "Nestor",
    "Nia",
    "Noah",
    "Olga",
    "Omar",
    "Patti",
    "Pradeep",
    "Priya",
    "Quentin",
    "Raul",
    "Rosa",
    "Sakura",
    "Samuel",
    "Sofia",
    "Tariq",
    "Thomas",
    "Uma",
    "Valentina",
    "Wei",
    "Xavier",
    "Yara",
    "Yusuf",
    "Zara",
    "Zoltan",
]
LAST_NAMES = [
    "Abara",
    "Adams",
    "Bauer",
    "Becker",
    "Cruz",
    "Dimitrov",
    "Dubois",
    "Eriksen",
    "Fernandes",
    "Fischer",
    "Garcia",
    "Gomez",
    "Haddad",
    "Hansen",
    "Ibrahim",
    "Ito",
    "Jensen",
    "Johnson",
    "Kaur",
    "Kim",
    "Kowalski",
    "Laar",
    "Larsen",
    "Lopez",
    "Martin",
    "Moreau",
    "Murphy",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Rossi",
    "Russo",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Sorensen",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Vance",
    "Varga",
    "Wagner",
    "Wang",
    "Weber",
    "Wilber",
    "Xu",
    "Yamamoto",
    "Young",
    "Zhang",
    "Zimmermann",
]
DEPARTMENTS = (
    "Engineering",
    "Finance",
    "Human Resources",
    "IT",
    "Legal",
    "Marketing",
    "Operations",
    "Research",
    "Sales",
    "Support",
    "Contractors",
)
JOB_TITLES = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Engineering Manager"),
    "Finance": ("Accountant", "Financial Analyst", "Controller"),
    "Human Resources": ("HR Generalist", "Recruiter", "HR Business Partner"),
    "IT": ("Systems Administrator", "Security Engineer", "IT Support Specialist"),
    "Legal": ("Counsel", "Paralegal"),
    "Marketing": ("Marketing Manager", "Content Strategist", "Product Marketing Manager"),
    "Operations": ("Operations Analyst", "Program Manager"),
    "Research": ("Research Scientist", "Data Scientist"),
    "Sales": ("Account Executive", "Sales Engineer", "Sales Manager"),
    "Support": ("Support Engineer", "Customer Success Manager"),
    "Contractors": ("Contractor",),
}
OFFICES = ("Berlin", "Dublin", "London", "New York", "Seattle", "Singapore", "Sydney", "Tokyo")
GUEST_DOMAINS = ("fabrikam.com", "northwind.example", "adatum.example", "litware.example")
PROJECTS = [
    "Apollo",
    "Atlas",
    "Borealis",
    "Comet",
    "Delta",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Ion",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Orion",
    "Pulsar",
    "Quartz",
    "Raven",
    "Summit",
    "Tundra",
    "Umbra",
    "Vertex",
    "Willow",
    "Zephyr",
]

BASE_DATE = datetime(2023, 1, 2, 9, 0, tzinfo=UTC)
NESTED_CHAIN = (
    "Password Manager Users - Europe",
    "Password Manager Users - Germany",
    "Password Manager Users - Berlin",
)


def build_tenant(users: int, groups: int, seed: int) -> EmulatorTenant:
    rng = random.Random(seed)

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    tenant_id = new_id()
    domain = "contoso.example"
    tenant = EmulatorTenant(tenant_id, domain, seed=seed)

    user_ids: list[str] = []
    member_ids: list[str] = []
    used_upns: set[str] = set()
    for index in range(users):
        user = _make_user(rng, new_id(), index, domain, used_upns)
        tenant.users[user["id"]] = user
        user_ids.append(user["id"])
        if user["userType"] == "Member":
            member_ids.append(user["id"])

    def add_group(name: str, *, unified: bool = False, description: str | None = None) -> str:
        group = _make_group(rng, new_id(), name, unified, description)
        tenant.groups[group["id"]] = group
        tenant.members[group["id"]] = set()
        return str(group["id"])

    def sample(pool: list[str], fraction: float, minimum: int = 1) -> set[str]:
        count = min(len(pool), max(minimum, round(len(pool) * fraction)))
        return set(rng.sample(pool, count)) if pool else set()

    scope = add_group("Password Manager Users", description="Users of the password manager")
    chain = [add_group(name) for name in NESTED_CHAIN]
    vault_admins = add_group("Vault Admins", description="Administrators of the vault")
    pm_groups = [add_group(f"PM-{team}") for team in ("Engineering", "Finance", "Support")]
    add_group("PM-Archive", description="Intentionally empty")
    all_company = add_group("All Company", unified=True, description="Every employee")

    tenant.members[scope] = sample(user_ids, 0.20) | {chain[0]}
    tenant.members[chain[0]] = sample(user_ids, 0.03) | {chain[1]}
    tenant.members[chain[1]] = sample(user_ids, 0.03) | {chain[2]}
    tenant.members[chain[2]] = sample(user_ids, 0.03)
    scope_users = sorted(m for m in tenant.members[scope] if m in tenant.users)
    tenant.members[vault_admins] = sample(scope_users, 0.10)
    for group_id in pm_groups:
        tenant.members[group_id] = sample(scope_users, 0.30)
    tenant.members[all_company] = set(member_ids)

    fixed = len(tenant.groups)
    by_department: dict[str, list[str]] = {}
    for user_id in user_ids:
        department = tenant.users[user_id].get("department")
        if department:
            by_department.setdefault(str(department), []).append(user_id)
    for index in range(max(0, groups - fixed)):
        if index < len(DEPARTMENTS):
            department = DEPARTMENTS[index]
            group_id = add_group(f"Dept - {department}")
            tenant.members[group_id] = set(by_department.get(department, []))
        else:
            number = index - len(DEPARTMENTS)
            project = PROJECTS[number % len(PROJECTS)]
            suffix = f" {number // len(PROJECTS) + 1}" if number >= len(PROJECTS) else ""
            name = f"Project {project}{suffix}"
            group_id = add_group(name, unified=True, description=f"Project {project} team")
            tenant.members[group_id] = sample(user_ids, rng.uniform(0.005, 0.05))
    it_group = tenant.group_by_name("Dept - IT")
    holders = [scope, chain[2], all_company] + ([str(it_group["id"])] if it_group else [])
    _add_other_members(tenant, random.Random(f"{seed}:others"), users, holders)
    return tenant


OPERATING_SYSTEMS = (("Windows", "10.0.22631.3447"), ("iOS", "17.4.1"), ("MacMDM", "14.4.1"))
SERVICE_APPS = ("Contoso Backup Agent", "HR Connector", "Vault Sync Service", "Build Runner")
CONTACT_COMPANIES = ("Fabrikam", "Northwind Traders", "Adatum")


def _add_other_members(
    tenant: EmulatorTenant, rng: random.Random, users: int, holders: list[str]
) -> None:
    """Devices, service principals and org contacts, each a member of one or two holders."""

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    extra = min(40, users // 2500)
    made: list[str] = []
    for index in range(3 + extra):
        system, version = OPERATING_SYSTEMS[index % len(OPERATING_SYSTEMS)]
        device = _make_device(rng, new_id(), new_id(), index, (system, version))
        tenant.others["device"][device["id"]] = device
        made.append(device["id"])
    for index in range(2 + extra // 2):
        app = SERVICE_APPS[index % len(SERVICE_APPS)]
        suffix = f" {index // len(SERVICE_APPS) + 1}" if index >= len(SERVICE_APPS) else ""
        app_id = new_id()
        principal: dict[str, Any] = {
            "id": new_id(),
            "deletedDateTime": None,
            "accountEnabled": True,
            "appDisplayName": app + suffix,
            "appId": app_id,
            "appOwnerOrganizationId": tenant.tenant_id,
            "displayName": app + suffix,
            "servicePrincipalNames": [app_id],
            "servicePrincipalType": "Application",
            "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
        }
        tenant.others["servicePrincipal"][str(principal["id"])] = principal
        made.append(str(principal["id"]))
    for index in range(2 + extra // 2):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = CONTACT_COMPANIES[index % len(CONTACT_COMPANIES)]
        mail = f"{first}.{last}{index}@{company.split()[0].lower()}.example".lower()
        contact: dict[str, Any] = {
            "id": new_id(),
            "deletedDateTime": None,
            "businessPhones": [],
            "city": rng.choice(OFFICES),
            "companyName": company,
            "country": None,
            "department": None,
            "displayName": f"{first} {last} ({company})",
            "givenName": first,
            "jobTitle": None,
            "mail": mail,
            "mailNickname": mail.split("@")[0].replace(".", ""),
            "proxyAddresses": [f"SMTP:{mail}"],
            "surname": last,
        }
        tenant.others["orgContact"][str(contact["id"])] = contact
        made.append(str(contact["id"]))
    for kind in ("device", "servicePrincipal", "orgContact"):
        # the first object of each kind goes to the scope group, the next to the next holder
        for position, object_id in enumerate(o for o in made if tenant.kind_of(o) == kind):
            tenant.members[holders[position % len(holders)]].add(object_id)
            if rng.random() < 0.3:
                tenant.members[rng.choice(holders)].add(object_id)


def _make_device(
    rng: random.Random, object_id: str, device_id: str, index: int, os: tuple[str, str]
) -> dict[str, Any]:
    system, version = os
    created = BASE_DATE + timedelta(minutes=rng.randrange(0, 60 * 24 * 600))
    prefix = {"Windows": "LAPTOP", "iOS": "IPHONE", "MacMDM": "MAC"}[system]
    return {
        "id": object_id,
        "deletedDateTime": None,
        "accountEnabled": True,
        "approximateLastSignInDateTime": utc_iso(created + timedelta(days=rng.randrange(1, 90))),
        "createdDateTime": utc_iso(created),
        "deviceId": device_id,
        "displayName": f"{prefix}-{index:04d}",
        "isCompliant": rng.random() < 0.8,
        "isManaged": True,
        "operatingSystem": system,
        "operatingSystemVersion": version,
        "trustType": "AzureAd" if system == "Windows" else "Workplace",
    }


def _make_user(
    rng: random.Random, user_id: str, index: int, domain: str, used: set[str]
) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    alias = f"{first}.{last}".lower()
    if alias in used:
        alias = f"{alias}{index}"
    used.add(alias)
    guest = rng.random() < 0.05
    department = rng.choice(DEPARTMENTS)
    created = BASE_DATE + timedelta(minutes=rng.randrange(0, 60 * 24 * 900))
    if guest:
        guest_domain = rng.choice(GUEST_DOMAINS)
        mail = f"{alias}@{guest_domain}"
        upn = f"{alias}_{guest_domain}#EXT#@{domain}"
    else:
        mail = f"{alias}@{domain}"
        upn = mail
    return {
        "id": user_id,
        "accountEnabled": rng.random() >= 0.05,
        "businessPhones": [f"+1 425 555 {rng.randrange(1000, 9999)}"] if not guest else [],
        "city": rng.choice(OFFICES),
        "companyName": None if guest else "Contoso",
        "createdDateTime": utc_iso(created),
        "creationType": "Invitation" if guest else None,
        "deletedDateTime": None,
        "department": None if guest else department,
        "displayName": f"{first} {last}",
        "employeeId": None if guest else f"E{100000 + index}",
        "employeeType": None
        if guest
        else ("Contractor" if department == "Contractors" else "Employee"),
        "externalUserState": "Accepted" if guest else None,
        "givenName": first,
        "jobTitle": None if guest else rng.choice(JOB_TITLES[department]),
        "lastPasswordChangeDateTime": utc_iso(created + timedelta(days=rng.randrange(0, 200))),
        "mail": mail,
        "mailNickname": alias.replace(".", ""),
        "mobilePhone": None,
        "officeLocation": None if guest else rng.choice(OFFICES),
        "onPremisesImmutableId": None,
        "onPremisesSyncEnabled": None,
        "otherMails": [],
        "preferredLanguage": "en-US",
        "proxyAddresses": [] if guest else [f"SMTP:{mail}"],
        "surname": last,
        "usageLocation": "US",
        "userPrincipalName": upn,
        "userType": "Guest" if guest else "Member",
    }


def _make_group(
    rng: random.Random, group_id: str, name: str, unified: bool, description: str | None
) -> dict[str, Any]:
    nickname = "".join(c for c in name if c.isalnum())
    created = BASE_DATE + timedelta(minutes=rng.randrange(0, 60 * 24 * 300))
    return {
        "id": group_id,
        "classification": None,
        "createdDateTime": utc_iso(created),
        "deletedDateTime": None,
        "description": description,
        "displayName": name,
        "expirationDateTime": None,
        "groupTypes": ["Unified"] if unified else [],
        "isAssignableToRole": None,
        "mail": f"{nickname}@contoso.example" if unified else None,
        "mailEnabled": unified,
        "mailNickname": nickname,
        "membershipRule": None,
        "membershipRuleProcessingState": None,
        "onPremisesSyncEnabled": None,
        "proxyAddresses": [f"SMTP:{nickname}@contoso.example"] if unified else [],
        "renewedDateTime": utc_iso(created),
        "securityEnabled": not unified,
        "securityIdentifier": f"S-1-12-1-{rng.getrandbits(31)}-{rng.getrandbits(31)}",
        "visibility": "Private" if unified else None,
    }
