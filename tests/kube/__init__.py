"""A Kubernetes API emulator (kmock 0.8, completed) and CRD schema tools for the tests.

- :class:`KubeEmulator` (``facade``): the server in its own thread, kubeconfig, kubectl, helpers.
- :class:`ApiEmulator` (``emulator``): the kmock ``KubernetesEmulator`` subclass itself.
- ``schema``: defaulting, pruning, validation and CEL of a CRD's structural schema.
"""

from tests.kube.emulator import ApiEmulator, ApiError
from tests.kube.facade import KubeApiError, KubeEmulator, condition

__all__ = ["ApiEmulator", "ApiError", "KubeApiError", "KubeEmulator", "condition"]
