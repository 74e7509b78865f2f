"""``bulkterm_kube_requests_total``: each attempt of the operator's own Kubernetes API calls,
by HTTP method and the status code the API server answered (``<error>``: no answer), as
client-go's ``rest_client_requests_total``; label values are bounded (no URLs, no names)."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from bulkterm import metrics
from bulkterm.k8s.kubeapi import ApiWeather


def requests(method: str, code: str) -> float:
    labels = {"method": method, "code": code}
    return metrics.REGISTRY.get_sample_value("bulkterm_kube_requests_total", labels) or 0.0


class LeaseApi:
    """The shape of a generated client: each method has a ``*_with_http_info`` twin."""

    def __init__(self, *answers: BaseException | int) -> None:
        self.answers = list(answers)

    def create_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the twin is called, which says the status")

    def create_namespaced_lease_with_http_info(
        self, *args: Any, **kwargs: Any
    ) -> tuple[str, int, dict[str, str]]:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return "created", answer, {}


async def test_an_answered_call_is_counted_with_its_method_and_status() -> None:
    before = requests("POST", "201")
    api = LeaseApi(201)
    assert await ApiWeather().call("create Lease", api.create_namespaced_lease) == "created"
    assert requests("POST", "201") == before + 1


async def test_a_refused_call_is_counted_with_the_status_it_was_refused_with() -> None:
    before = requests("POST", "409")
    api = LeaseApi(ApiException(status=409))
    with pytest.raises(ApiException):
        await ApiWeather().call("create Lease", api.create_namespaced_lease)
    assert requests("POST", "409") == before + 1


async def test_every_attempt_through_an_outage_is_counted() -> None:
    refused = urllib3.exceptions.MaxRetryError(None, "/", reason=ConnectionRefusedError(111))  # type: ignore[arg-type]
    api = LeaseApi(refused, ApiException(status=503), 201)
    counts = {code: requests("POST", code) for code in ("<error>", "503", "201")}
    await ApiWeather(backoff=(0.0,)).call("create Lease", api.create_namespaced_lease)
    assert {code: requests("POST", code) - n for code, n in counts.items()} == {
        "<error>": 1,
        "503": 1,
        "201": 1,
    }


async def test_a_callable_without_a_twin_counts_as_answered() -> None:
    before = requests("GET", "200")

    def read_namespaced_thing() -> str:
        return "thing"

    assert await ApiWeather().call("read thing", read_namespaced_thing) == "thing"
    assert requests("GET", "200") == before + 1


@pytest.mark.parametrize(
    ("api", "name", "method"),
    [
        (k8s.CoreV1Api, "read_namespaced_secret", "GET"),
        (k8s.CustomObjectsApi, "patch_namespaced_custom_object_status", "PATCH"),
        (k8s.CustomObjectsApi, "delete_namespaced_custom_object", "DELETE"),
        (k8s.CustomObjectsApi, "list_namespaced_custom_object", "GET"),
        (k8s.AdmissionregistrationV1Api, "read_validating_admission_policy", "GET"),
        (k8s.AdmissionregistrationV1Api, "read_validating_admission_policy_binding", "GET"),
        (k8s.CoordinationV1Api, "read_namespaced_lease", "GET"),
        (k8s.CoordinationV1Api, "create_namespaced_lease", "POST"),
        (k8s.CoordinationV1Api, "replace_namespaced_lease", "PUT"),
        (k8s.CoordinationV1Api, "delete_namespaced_lease", "DELETE"),
        (k8s.CoordinationV1Api, "list_namespaced_lease", "GET"),
    ],
)
async def test_each_client_method_the_operator_calls_has_a_twin_that_says_the_status(
    api: type[Any], name: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The locked kubernetes client's methods the operator calls (kubeapi, lease_store): each
    has its ``*_with_http_info`` twin, and its name says its HTTP method."""
    instance = api(k8s.ApiClient())
    monkeypatch.setattr(instance, f"{name}_with_http_info", lambda *a, **k: ("ok", 299, {}))
    before = requests(method, "299")
    assert await ApiWeather().call(name, getattr(instance, name)) == "ok"
    assert requests(method, "299") == before + 1
