"""The permissions of `_namespace.yaml` declarations, as the access checks read them: users and
groups, READ < EXECUTE < OWNER, inherited by the namespaces below, the owner holding everything."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tiercel.engine.access import Access, AccessDenied, Permission, Principal
from tiercel.engine.flows.namespaces import Namespaces

DECLARATIONS = {
    "acme": """
        permissions:
          - group: data-engineers
            permission: READ
          - username: olivia
            permission: OWNER
        """,
    "acme/finance": """
        permissions:
          - group: data-engineers
            permission: EXECUTE
          - username: fred
            permission: read
        """,
    "acme/finance/payroll": """
        description: no permissions of its own
        """,
}


@pytest.fixture
def namespaces(tmp_path: Path) -> Namespaces:
    for folder, text in DECLARATIONS.items():
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "_namespace.yaml").write_text(textwrap.dedent(text))
    found = Namespaces()
    found.load(tmp_path)
    assert not found.errors
    return found


ENGINEER = Principal("erin", frozenset({"data-engineers"}))


@pytest.mark.parametrize(
    ("principal", "namespace", "expected"),
    [
        (ENGINEER, "acme", Permission.READ),
        (ENGINEER, "acme.marketing", Permission.READ),  # inherited from acme
        (ENGINEER, "acme.finance", Permission.EXECUTE),  # the higher grant of the nearer namespace
        (ENGINEER, "acme.finance.payroll", Permission.EXECUTE),
        (Principal("olivia"), "acme.finance.payroll", Permission.OWNER),
        (Principal("fred"), "acme.finance", Permission.READ),
        (Principal("fred"), "acme", None),  # a grant does not reach up
        (Principal("erin"), "acme", None),  # the group, not the name, was granted
        (ENGINEER, "acmeco", None),  # a name that only starts alike is not below
        (Principal("anyone", owner=True), "elsewhere.entirely", Permission.OWNER),
    ],
)
def test_a_person_holds_the_highest_grant_along_the_namespace(
    namespaces: Namespaces, principal: Principal, namespace: str, expected: Permission | None
) -> None:
    assert Access(namespaces.chain, principal).held(namespace) == expected


def test_each_permission_includes_the_lower_ones_and_a_refusal_says_what_and_where(
    namespaces: Namespaces,
) -> None:
    Access(namespaces.chain, ENGINEER).require("acme.finance", Permission.READ)
    Access(namespaces.chain, ENGINEER).require("acme.finance", Permission.EXECUTE)
    with pytest.raises(AccessDenied) as refused:
        Access(namespaces.chain, ENGINEER).require("acme.finance", Permission.OWNER)
    assert str(refused.value).startswith("User `erin` lacks OWNER on namespace `acme.finance` (holds EXECUTE")
    with pytest.raises(AccessDenied, match=r"lacks READ on namespace `other` \(holds no permission there\)"):
        Access(namespaces.chain, ENGINEER).require("other", Permission.READ)
