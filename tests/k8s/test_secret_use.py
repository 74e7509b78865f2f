"""Who may spend a key (``bulkterm.k8s.secret_use``): the admission policy as the operator
reads it, the moment from which it vouches for a BulkTermination, and the name grant that
counts only when allowed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bulkterm.aiapi.models import TargetStatus
from bulkterm.k8s.secret_bounds import RESOURCE_GROUPS, SecretUse
from bulkterm.k8s.secret_use import (
    ACTIVATION_SECONDS,
    GRANT_ANNOTATION,
    AdmissionNames,
    AdmissionTrust,
    Requester,
    SecretProblem,
    assess,
    check_name_grant,
    check_secret_use,
    identity_problem,
    policy_manifests,
)

NS = "ml-team"
NAMES = AdmissionNames()
POLICY_MADE = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
BINDING_MADE = POLICY_MADE + timedelta(seconds=1)
LATER = BINDING_MADE + timedelta(seconds=ACTIVATION_SECONDS)


def served() -> tuple[dict[str, Any], dict[str, Any]]:
    """The policy and binding as an API server returns them: defaults filled in."""
    policy, binding = copy.deepcopy(policy_manifests(NAMES))
    policy["metadata"]["creationTimestamp"] = POLICY_MADE.strftime("%Y-%m-%dT%H:%M:%SZ")
    binding["metadata"]["creationTimestamp"] = BINDING_MADE.strftime("%Y-%m-%dT%H:%M:%SZ")
    match = policy["spec"]["matchConstraints"]
    match.update(namespaceSelector={}, objectSelector={}, matchPolicy="Equivalent")
    match["resourceRules"][0]["scope"] = "*"
    return policy, binding


def test_the_policy_and_binding_as_served_vouch_from_the_later_of_their_creations() -> None:
    assert assess(*served(), NAMES) == AdmissionTrust(BINDING_MADE)


def test_a_missing_policy_or_binding_vouches_for_nothing() -> None:
    policy, binding = served()
    missing_policy = assess(None, binding, NAMES)
    assert missing_policy.since is None
    assert f"ValidatingAdmissionPolicy {NAMES.policy} is not installed" in missing_policy.problem
    missing_binding = assess(policy, None, NAMES)
    assert missing_binding.since is None
    assert f"Binding {NAMES.binding} is not installed" in missing_binding.problem


def _set(path: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def change(policy: dict[str, Any], binding: dict[str, Any]) -> None:
        target: Any = {"policy": policy, "binding": binding}
        *parents, last = path.split(".")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


ALTERATIONS = {
    "fails open": (_set("policy.spec.failurePolicy", "Ignore"), "failurePolicy"),
    "exempts by matchCondition": (
        _set("policy.spec.matchConditions", [{"name": "x", "expression": "false"}]),
        "matchConditions",
    ),
    "narrows to some namespaces": (
        _set("policy.spec.matchConstraints.namespaceSelector", {"matchLabels": {"a": "b"}}),
        "namespaceSelector",
    ),
    "narrows to some objects": (
        _set("policy.spec.matchConstraints.objectSelector", {"matchLabels": {"a": "b"}}),
        "objectSelector",
    ),
    "excludes resources": (
        _set("policy.spec.matchConstraints.excludeResourceRules", [{"resources": ["*"]}]),
        "exclude",
    ),
    "matches only updates": (
        _set("policy.spec.matchConstraints.resourceRules.0.operations", ["UPDATE"]),
        "no resourceRule",
    ),
    "matches another resource": (
        _set("policy.spec.matchConstraints.resourceRules.0.resources", ["jobs"]),
        "no resourceRule",
    ),
    "checks another verb": (
        _set(
            "policy.spec.validations.0.expression",
            "variables.ref == '' || authorizer.group('').resource('secrets')"
            ".namespace(request.namespace).name(variables.ref).check('get').allowed()",
        ),
        "no validation checks",
    ),
    "rewrites a variable": (
        _set("policy.spec.variables.0.expression", "''"),
        "variables differ",
    ),
    "takes parameters": (_set("policy.spec.paramKind", {"kind": "ConfigMap"}), "parameters"),
    "binding only warns": (_set("binding.spec.validationActions", ["Warn"]), "does not Deny"),
    "binding names another policy": (_set("binding.spec.policyName", "other"), "names policy"),
    "binding narrows to some namespaces": (
        _set("binding.spec.matchResources", {"namespaceSelector": {"matchLabels": {"a": "b"}}}),
        "namespaceSelector",
    ),
}


@pytest.mark.parametrize("alteration", ALTERATIONS, ids=list(ALTERATIONS))
def test_an_altered_policy_or_binding_vouches_for_nothing_and_says_what_differs(
    alteration: str,
) -> None:
    change, said = ALTERATIONS[alteration]
    policy, binding = served()
    change(policy, binding)
    trust = assess(policy, binding, NAMES)
    assert trust.since is None
    assert said in trust.problem
    assert "reinstall them from the chart" in trust.problem


def test_a_further_validation_only_narrows_and_is_trusted() -> None:
    policy, binding = served()
    policy["spec"]["validations"].append({"expression": "size(object.metadata.name) < 40"})
    assert assess(policy, binding, NAMES).since == BINDING_MADE


def test_a_bulktermination_created_once_the_policy_is_in_force_is_vouched_for() -> None:
    trust = assess(*served(), NAMES)
    assert identity_problem(trust, Requester("cleanup", LATER), NS, "aicore") is None


def test_a_bulktermination_created_before_the_policy_was_in_force_is_not() -> None:
    trust = assess(*served(), NAMES)
    early = Requester("cleanup", LATER - timedelta(seconds=1))
    problem = identity_problem(trust, early, NS, "aicore")
    assert problem is not None
    assert f"may use Secret {NS}/aicore" in problem
    assert "before the admission policy was in force" in problem
    assert "delete it and create it again" in problem


def test_without_a_creation_time_nothing_is_vouched_for() -> None:
    trust = assess(*served(), NAMES)
    assert identity_problem(trust, Requester("cleanup", None), NS, "aicore") is not None
    assert identity_problem(trust, None, NS, "aicore") is not None


def use(group: str = "default", *statuses: TargetStatus) -> SecretUse:
    return SecretUse(group, frozenset(statuses or {TargetStatus.STOPPED}), 1)


def test_an_unverified_use_stalls_even_with_a_name_grant_unless_name_grants_are_allowed() -> None:
    untrusted = AdmissionTrust.untrusted("policy gone")
    requester = Requester("cleanup", LATER)
    notes = {GRANT_ANNOTATION: "*"}
    with pytest.raises(SecretProblem) as caught:
        check_secret_use(
            notes, NS, "aicore", requester, use(), trust=untrusted, allow_name_grants=False
        )
    assert caught.value.reason == "SecretUseUnverified"
    assert "nothing was sent" in caught.value.message
    check_secret_use(notes, NS, "aicore", requester, use(), trust=untrusted, allow_name_grants=True)


def test_a_verified_use_needs_no_annotation_but_stays_within_the_bounds() -> None:
    trust = AdmissionTrust(BINDING_MADE)
    requester = Requester("cleanup", LATER)
    check_secret_use(None, NS, "aicore", requester, use(), trust=trust, allow_name_grants=False)
    with pytest.raises(SecretProblem) as caught:
        check_secret_use(
            {RESOURCE_GROUPS: "team-a"},
            NS,
            "aicore",
            requester,
            use("team-b"),
            trust=trust,
            allow_name_grants=False,
        )
    assert caught.value.reason == "OutsideSecretBounds"


def test_a_refused_name_grant_says_why_identity_did_not_decide() -> None:
    with pytest.raises(SecretProblem) as caught:
        check_secret_use(
            {GRANT_ANNOTATION: "other"},
            NS,
            "aicore",
            Requester("cleanup", LATER),
            use(),
            trust=AdmissionTrust.untrusted("policy gone"),
            allow_name_grants=True,
        )
    assert caught.value.reason == "SecretNotGranted"
    assert "policy gone" in caught.value.message
    assert "adds 'cleanup' to that comma-separated list" in caught.value.message


@pytest.mark.parametrize(
    "grant", ["*", "cleanup", "other,cleanup", " other , cleanup ", "clean*", "other,*", "cleanu?"]
)
def test_a_name_grant_naming_the_bulktermination_or_all_allows_it(grant: str) -> None:
    check_name_grant({GRANT_ANNOTATION: grant}, NS, "k", "cleanup")


@pytest.mark.parametrize("grant", ["", " , ", "other", "cleanup-2", "Cleanup", "clean", "x*"])
def test_a_name_grant_not_naming_the_bulktermination_refuses_it(grant: str) -> None:
    with pytest.raises(SecretProblem) as caught:
        check_name_grant({GRANT_ANNOTATION: grant}, NS, "k", "cleanup")
    assert f"its annotation {GRANT_ANNOTATION} does not name it" in caught.value.message


def test_without_an_annotation_the_refusal_shows_the_command_that_grants_by_name() -> None:
    with pytest.raises(SecretProblem) as caught:
        check_name_grant({"aiapi.bulkops.dev/allowed": "*"}, NS, "aicore", "cleanup")
    assert (
        f"kubectl -n {NS} annotate secret aicore {GRANT_ANNOTATION}=cleanup"
    ) in caught.value.message
