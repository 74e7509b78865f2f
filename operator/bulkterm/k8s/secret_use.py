"""Who may spend a service key: decided by identity, at admission, by the API server.

The operator may ``get`` every Secret a BulkTermination can name, so the question is never
whether *it* may read a key but whether the *author* of the BulkTermination may spend it.
Kubernetes answers that question for us if asked at the right moment: a
``ValidatingAdmissionPolicy`` (:func:`policy_manifests`) runs when a BulkTermination is
created, or its Secret reference changes, and asks the authorizer whether the requesting
user, ServiceAccount or GitOps pipeline holds the custom verb ``use`` on that Secret (as Pod
Security Policies had ``use``). RBAC, and every audit tool that reads RBAC, then says who may
spend which key; the BulkTermination's name plays no part.

The operator cannot see who created an object, so it trusts the admission instead, and only
while it can check that the admission happened: before a key is used it reads the policy and
its binding (:func:`assess`, cached for :data:`TRUST_TTL_SECONDS`) and requires

* both exist, the policy fails closed, matches every BulkTermination on create and update, and
  holds exactly the expression that checks ``use`` (a narrowed or reworded policy could admit
  what this one refuses); the binding denies and narrows nothing;
* the BulkTermination was created at least :data:`ACTIVATION_SECONDS` after the later of the
  two: the API server loads a new policy a few seconds after it is written, and a
  BulkTermination created before that was never checked.

Otherwise the run stalls with ``SecretUseUnverified`` and nothing is sent. Anyone who can
rewrite cluster admission policies can read the Secret anyway, so a policy weakened and then
restored between two checks is outside what this defends.

A Secret's annotation naming BulkTerminations (:data:`GRANT_ANNOTATION`) is the weaker,
older grant: the author picks the name, so it says nothing about who asked. It counts only
when the operator runs with ``allow_name_grants`` (Helm ``secretUse.allowNameGrants``), and
only where the identity check cannot be made. The bounds of :mod:`.secret_bounds` (what a key
may be spent on) apply either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from bulkterm.k8s.secret_bounds import SecretProblem as SecretProblem  # every reason, one class
from bulkterm.k8s.secret_bounds import SecretUse, check_bounds, entries
from bulkterm.spec import API_GROUP, API_VERSION, APPROVED_PLAN_ANNOTATION, PLURAL

#: The verb RBAC grants on a Secret to whoever may spend its key through a BulkTermination.
USE_VERB = "use"
#: The policy and binding the chart installs for release ``bulk-termination-operator``.
DEFAULT_POLICY_NAME = "bulk-termination-operator-admission"
#: How long after the policy and binding exist a BulkTermination's admission counts as checked.
ACTIVATION_SECONDS = 10.0
#: How long a read of the policy and binding is reused.
TRUST_TTL_SECONDS = 10.0

#: Stall reasons.
SECRET_USE_UNVERIFIED = "SecretUseUnverified"
SECRET_NOT_GRANTED = "SecretNotGranted"

#: ``*`` for every one, else a comma-separated list of BulkTermination names, each of which
#: may be a shell-style pattern (``retire-*``). Honoured only with ``allow_name_grants``.
GRANT_ANNOTATION = f"{API_GROUP}/allowed-bulkterminations"
#: The name grant that allows every BulkTermination of the namespace.
GRANT_ALL = "*"

#: The CEL variables of the policy: the Secret the object names, and the one it named before
#: (empty on create, or when no Secret is named).
POLICY_VARIABLES: tuple[tuple[str, str], ...] = (
    (
        "ref",
        "has(object.spec.connection) && has(object.spec.connection.secretRef)"
        " ? object.spec.connection.secretRef.name : ''",
    ),
    (
        "oldRef",
        "oldObject != null && has(oldObject.spec.connection)"
        " && has(oldObject.spec.connection.secretRef)"
        " ? oldObject.spec.connection.secretRef.name : ''",
    ),
)
#: The verb RBAC grants on a BulkTermination to whoever may approve its plan.
APPROVE_VERB = "approve"
_APPROVED = (
    "has({o}.metadata.annotations) && '{a}' in {o}.metadata.annotations"
    " ? {o}.metadata.annotations['{a}'] : ''"
)
POLICY_VARIABLES += (
    ("approved", _APPROVED.format(o="object", a=APPROVED_PLAN_ANNOTATION)),
    (
        "oldApproved",
        "oldObject != null && " + _APPROVED.format(o="oldObject", a=APPROVED_PLAN_ANNOTATION),
    ),
)
#: The approval check: no approval given, the same as before, or ``approve`` on this
#: BulkTermination is allowed for the user making the request.
APPROVAL_EXPRESSION = (
    "variables.approved == '' || variables.approved == variables.oldApproved"
    f" || authorizer.group('{API_GROUP}').resource('{PLURAL}').namespace(request.namespace)"
    f".name(object.metadata.name).check('{APPROVE_VERB}').allowed()"
)
APPROVAL_MESSAGE = (
    "'user ' + request.userInfo.username + ' may not approve the plan of BulkTermination '"
    " + request.namespace + '/' + object.metadata.name + ': that needs the verb \"approve\" on"
    " bulkterminations (the built-in admin role has it)'"
)
#: The check itself: no Secret named, the same one as before, or ``use`` on it is allowed for
#: the user making the request.
POLICY_EXPRESSION = (
    "variables.ref == '' || variables.ref == variables.oldRef"
    f" || authorizer.group('').resource('secrets').namespace(request.namespace)"
    f".name(variables.ref).check('{USE_VERB}').allowed()"
)
POLICY_MESSAGE = (
    "'user ' + request.userInfo.username + ' may not use Secret ' + request.namespace + '/'"
    ' + variables.ref + \' in a BulkTermination: that needs the verb "use" on the Secret,'
    ' from a Role with the rule {apiGroups: [""], resources: [secrets], resourceNames: [\''
    " + variables.ref + '], verbs: [use]} bound to them'"
)


@dataclass(frozen=True)
class Requester:
    """The BulkTermination asking for a key: its name (for name grants) and when the API
    server created it (for the admission check)."""

    name: str
    created: datetime | None


@dataclass(frozen=True)
class AdmissionNames:
    """The policy and binding this operator trusts (the chart names them after the release)."""

    policy: str = DEFAULT_POLICY_NAME
    binding: str = DEFAULT_POLICY_NAME


@dataclass(frozen=True)
class AdmissionTrust:
    """What a read of the policy and binding showed: the moment from which BulkTerminations
    were checked at admission, or why none can be trusted."""

    since: datetime | None
    problem: str = ""

    @classmethod
    def untrusted(cls, problem: str) -> AdmissionTrust:
        return cls(None, problem)


def policy_manifests(
    names: AdmissionNames = AdmissionNames(), labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding, as the chart renders them (a chart test
    compares the two), for harnesses that run the operator without the chart."""
    metadata = {"labels": dict(labels)} if labels else {}
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": names.policy, **metadata},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [API_GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [PLURAL],
                    }
                ]
            },
            "variables": [{"name": n, "expression": e} for n, e in POLICY_VARIABLES],
            "validations": [
                {
                    "expression": POLICY_EXPRESSION,
                    "messageExpression": POLICY_MESSAGE,
                    "reason": "Forbidden",
                },
                {
                    "expression": APPROVAL_EXPRESSION,
                    "messageExpression": APPROVAL_MESSAGE,
                    "reason": "Forbidden",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": names.binding, **metadata},
        "spec": {"policyName": names.policy, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def assess(
    policy: Mapping[str, Any] | None,
    binding: Mapping[str, Any] | None,
    names: AdmissionNames,
) -> AdmissionTrust:
    """Whether the policy and binding, as the API server returned them, check ``use`` on every
    BulkTermination's Secret; and from when."""
    if policy is None:
        return AdmissionTrust.untrusted(
            f"ValidatingAdmissionPolicy {names.policy} is not installed (Helm: "
            "secretUse.admissionPolicy.create)"
        )
    if binding is None:
        return AdmissionTrust.untrusted(
            f"ValidatingAdmissionPolicyBinding {names.binding} is not installed (Helm: "
            "secretUse.admissionPolicy.create)"
        )
    altered = _policy_deviations(policy.get("spec") or {}) + _binding_deviations(
        binding.get("spec") or {}, names
    )
    if altered:
        return AdmissionTrust.untrusted(
            f"ValidatingAdmissionPolicy {names.policy} or its binding {names.binding} does not "
            f"check the verb {USE_VERB!r} as this operator expects ({'; '.join(altered)}); "
            "reinstall them from the chart"
        )
    created = [created_at(o.get("metadata")) for o in (policy, binding)]
    if None in created:
        return AdmissionTrust.untrusted(
            f"ValidatingAdmissionPolicy {names.policy} has no creationTimestamp"
        )
    return AdmissionTrust(max(c for c in created if c is not None))


def identity_problem(
    trust: AdmissionTrust, requester: Requester | None, namespace: str, secret: str
) -> str | None:
    """Why the admission of ``requester`` cannot vouch for its author's right to use Secret
    ``namespace/secret`` (None: it can)."""
    head = f"cannot verify that whoever created this BulkTermination may use Secret {namespace}/{secret}"
    if trust.since is None:
        return f"{head}: {trust.problem}"
    if requester is None or requester.created is None:
        return f"{head}: the BulkTermination's creation time is not known"
    checked_from = trust.since + timedelta(seconds=ACTIVATION_SECONDS)
    if requester.created < checked_from:
        return (
            f"{head}: it was created at {_iso(requester.created)}, before the admission policy "
            f"was in force (from {_iso(checked_from)}), so its author's right was never "
            "checked; delete it and create it again"
        )
    return None


def check_name_grant(
    annotations: Mapping[str, str] | None,
    namespace: str,
    secret: str,
    bulktermination: str | None,
    *,
    instead_of: str = "",
) -> None:
    """Raise :class:`SecretProblem` (``SecretNotGranted``) unless the Secret's annotation
    grants its use to BulkTermination ``bulktermination`` by name.

    ``bulktermination`` None is granted only by ``*``. The message names the Secret, the
    annotation and the BulkTermination, never the annotation's value; ``instead_of`` says why
    the identity check did not decide."""
    patterns = entries((annotations or {}).get(GRANT_ANNOTATION))
    if patterns is not None:
        if GRANT_ALL in patterns:
            return
        if bulktermination is not None and any(fnmatchcase(bulktermination, p) for p in patterns):
            return
    who = f"BulkTermination {namespace}/{bulktermination}" if bulktermination else "it"
    name_or_all = bulktermination or GRANT_ALL
    why = f" ({instead_of})" if instead_of else ""
    if patterns is None:
        grant = (
            f"it has no annotation {GRANT_ANNOTATION}; the Secret's owner grants it with "
            f"`kubectl -n {namespace} annotate secret {secret} {GRANT_ANNOTATION}={name_or_all}`"
        )
    else:
        grant = (
            f"its annotation {GRANT_ANNOTATION} does not name it; the Secret's owner adds "
            f"{name_or_all!r} to that comma-separated list"
        )
    raise SecretProblem(
        SECRET_NOT_GRANTED, f"Secret {namespace}/{secret} is not granted to {who}{why}: {grant}"
    )


def check_secret_use(
    annotations: Mapping[str, str] | None,
    namespace: str,
    secret: str,
    requester: Requester | None,
    use: SecretUse | None,
    *,
    trust: AdmissionTrust,
    allow_name_grants: bool,
) -> None:
    """Who (the admission check, else a name grant where allowed) and, for a known ``use``,
    for what (the Secret's bounds); raises :class:`SecretProblem` with the reason a run
    stalls with."""
    problem = identity_problem(trust, requester, namespace, secret)
    if problem is not None:
        if not allow_name_grants:
            raise SecretProblem(SECRET_USE_UNVERIFIED, f"{problem}; nothing was sent")
        check_name_grant(
            annotations,
            namespace,
            secret,
            requester.name if requester else None,
            instead_of=problem,
        )
    if use is not None:
        check_bounds(annotations, namespace, secret, use)


def _policy_deviations(spec: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    if spec.get("failurePolicy", "Fail") != "Fail":
        found.append(f"failurePolicy is {spec.get('failurePolicy')!r}, not 'Fail'")
    if spec.get("paramKind"):
        found.append("it takes parameters")
    if spec.get("matchConditions"):
        found.append("it has matchConditions, which can exempt requests")
    match = spec.get("matchConstraints") or {}
    found += _narrowing(match, "matchConstraints")
    if not any(_covers(rule) for rule in match.get("resourceRules") or []):
        found.append(f"no resourceRule matches CREATE and UPDATE of {PLURAL}.{API_GROUP}")
    variables = [(v.get("name"), v.get("expression")) for v in spec.get("variables") or []]
    if variables != list(POLICY_VARIABLES):
        found.append("its variables differ")
    expressions = {v.get("expression") for v in spec.get("validations") or []}
    if POLICY_EXPRESSION not in expressions:
        found.append(f"no validation checks the verb {USE_VERB!r} on the named Secret")
    if APPROVAL_EXPRESSION not in expressions:
        found.append(f"no validation checks the verb {APPROVE_VERB!r} for an approval")
    return found


def _binding_deviations(spec: Mapping[str, Any], names: AdmissionNames) -> list[str]:
    found: list[str] = []
    if spec.get("policyName") != names.policy:
        found.append(f"the binding names policy {spec.get('policyName')!r}")
    if "Deny" not in (spec.get("validationActions") or []):
        found.append("the binding does not Deny")
    if spec.get("paramRef"):
        found.append("the binding takes parameters")
    match = spec.get("matchResources") or {}
    found += _narrowing(match, "the binding's matchResources")
    if match.get("resourceRules"):
        found.append("the binding's matchResources narrow the resources")
    return found


def _narrowing(match: Mapping[str, Any], where: str) -> list[str]:
    found = [
        f"{where} has a {selector}"
        for selector in ("namespaceSelector", "objectSelector")
        if match.get(selector)
    ]
    if match.get("excludeResourceRules"):
        found.append(f"{where} exclude resources")
    return found


def _covers(rule: Mapping[str, Any]) -> bool:
    def has(field: str, *wanted: str) -> bool:
        listed: Sequence[str] = rule.get(field) or []
        return "*" in listed or all(w in listed for w in wanted)

    return (
        has("apiGroups", API_GROUP)
        and has("apiVersions", API_VERSION)
        and has("resources", PLURAL)
        and has("operations", "CREATE", "UPDATE")
        and rule.get("scope", "*") in ("*", "Namespaced")
    )


def created_at(metadata: Mapping[str, Any] | None) -> datetime | None:
    """An object's ``metadata.creationTimestamp`` (None: absent)."""
    value = (metadata or {}).get("creationTimestamp")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
