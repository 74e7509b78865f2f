"""The API server as ``kubectl bulkterm`` sees it: a kubeconfig chosen as kubectl chooses it,
one BulkTermination read or merge-patched, and every failure as one :class:`PluginError`.

Errors are for a person at a terminal: a line that says what is wrong and what to try, with
the exit code kubectl would use (1 for an answer of the server, 2 for a usage problem such as
no kubeconfig), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from bulkterm.restore.journal import Journal, loads
from bulkterm.spec import API_GROUP, API_VERSION, KIND, PLURAL

#: Exit codes: the server said no (not found, forbidden, unreachable); the call was wrong.
EXIT_FAILED = 1
EXIT_USAGE = 2

#: Seconds per API request: a person is waiting.
REQUEST_TIMEOUT = 30


class PluginError(Exception):
    """One line for stderr, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        #: The API server's HTTP status, when it answered.
        self.status = status


@dataclass(frozen=True)
class KubeOptions:
    """kubectl's own flags: ``--kubeconfig``, ``--context``, ``-n/--namespace``."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


def _config_file(options: KubeOptions) -> str | None:
    # As kubectl: the flag, else $KUBECONFIG (a list of paths), else ~/.kube/config.
    return options.kubeconfig or os.environ.get("KUBECONFIG") or None


def _context_namespace(options: KubeOptions) -> str:
    """The namespace of the chosen context, as kubectl defaults it (``default`` if unset)."""
    contexts, active = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=_config_file(options)
    )
    chosen = active
    if options.context:
        chosen = next((c for c in contexts or () if c.get("name") == options.context), None)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


class BulkTerminations:
    """BulkTerminations of one namespace, through the kubernetes client."""

    def __init__(self, options: KubeOptions) -> None:
        configuration = k8s.Configuration()
        # A person waits: a refused connection fails at once instead of three times in a row.
        configuration.retries = 0
        named = _config_file(options) or "~/.kube/config"
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=_config_file(options),
                context=options.context,
                client_configuration=configuration,
            )
            self.namespace = options.namespace or _context_namespace(options)
        except Exception as exc:  # ConfigException, a missing or unreadable file, bad YAML
            reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
            raise PluginError(
                f"no usable kubeconfig ({named}): {reason}; set --kubeconfig or KUBECONFIG",
                EXIT_USAGE,
            ) from None
        self.server = configuration.host
        api_client = k8s.ApiClient(configuration)
        self._api = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def get(self, name: str) -> dict[str, Any]:
        """The object, with its status."""
        result: dict[str, Any] = self.call(
            _named(name),
            "get",
            self._api.get_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            self.namespace,
            PLURAL,
            name,
        )
        return result

    def merge_patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (not its status)."""
        result: dict[str, Any] = self.call(
            _named(name),
            "patch",
            self._api.patch_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            self.namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )
        return result

    def call(self, what: str, verb: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """One request for ``what`` (``configmaps "x"``); :class:`PluginError` naming it and
        the namespace when the API server refuses it or cannot be reached."""
        try:
            return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            raise PluginError(self._refusal(what, verb, exc), status=exc.status) from None
        except (Urllib3Error, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PluginError(f"cannot reach the API server at {self.server}: {reason}") from None

    def _refusal(self, what: str, verb: str, exc: ApiException) -> str:
        if exc.status == 404:
            return f"{what} not found in namespace {self.namespace}"
        message = ""
        try:
            message = str(json.loads(exc.body or "{}").get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        if exc.status == 403:
            return message or f"forbidden: you may not {verb} {what} in namespace {self.namespace}"
        if exc.status == 401:
            return f"unauthorized: the API server at {self.server} did not accept the credentials"
        return f"{verb} {what} in namespace {self.namespace}: {exc.status} {message or exc.reason}"


#: The key of the journal in its ConfigMap.
JOURNAL_KEY = "journal.json"


def _named(name: str) -> str:
    return f'bulkterminations.{API_GROUP} "{name}"'


def journal_name(name: str) -> str:
    """``<name>-restore``, shortened with a hash when that passes the 253-character limit."""
    wanted = f"{name}-restore"
    if len(wanted) <= 253:
        return wanted
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: 253 - len(digest) - 9]}-{digest}-restore"


class ConfigMapJournal:
    """A restore's journal (:mod:`bulkterm.restore.journal`) in a ConfigMap the BulkTermination
    owns (deleted with it). Written with the resourceVersion read: two restores of one
    BulkTermination at once fail the second's write instead of both creating."""

    def __init__(self, kube: BulkTerminations, owner: dict[str, Any]) -> None:
        metadata = owner["metadata"]
        self._kube = kube
        self._owner = {
            "api_version": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": metadata["name"],
            "uid": metadata["uid"],
        }
        self.name = journal_name(metadata["name"])
        self.where = f"configmap/{self.name} in namespace {kube.namespace}"
        self._what = f'configmaps "{self.name}"'
        self._version: str | None = None

    def load(self) -> Journal | None:
        try:
            found = self._kube.call(
                self._what, "get", self._kube.core.read_namespaced_config_map,
                self.name, self._kube.namespace,
            )  # fmt: skip
        except PluginError as error:
            if error.status == 404:
                return None
            raise
        self._version = _version_of(found)
        return loads((found.data or {}).get(JOURNAL_KEY, ""), self.where)

    def save(self, journal: Journal) -> None:
        body = k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(
                name=self.name,
                namespace=self._kube.namespace,
                owner_references=[k8s.V1OwnerReference(**self._owner)],
                labels={"app.kubernetes.io/managed-by": "bulkterm"},
                resource_version=self._version,
            ),
            data={JOURNAL_KEY: journal.dumps()},
        )
        core, namespace = self._kube.core, self._kube.namespace
        try:
            if self._version is None:
                written = self._kube.call(
                    self._what, "create", core.create_namespaced_config_map, namespace, body
                )
            else:
                written = self._kube.call(
                    self._what, "update", core.replace_namespaced_config_map,
                    self.name, namespace, body,
                )  # fmt: skip
        except PluginError as error:
            if error.status == 409:
                raise PluginError(
                    f"{self.where} changed or appeared meanwhile: another restore of the same "
                    "BulkTermination is running; let it finish, then run restore again"
                ) from None
            raise
        self._version = _version_of(written)


def _version_of(config_map: k8s.V1ConfigMap) -> str | None:
    metadata = config_map.metadata
    return None if metadata is None else metadata.resource_version
