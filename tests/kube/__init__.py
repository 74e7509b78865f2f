"""A real Kubernetes control plane (etcd + kube-apiserver) and client helpers for the tests.

- :class:`ControlPlane` (``controlplane``): builds or reuses the binaries, makes the PKI,
  starts both servers on free loopback ports and stops them.
- :class:`Kube` (``client``): admin HTTPS access with discovery, CRUD, waits, Events,
  kubectl, and kubeconfigs holding a ServiceAccount's token.
"""

from tests.kube.client import Kube, KubeApiError, Resolved, condition
from tests.kube.controlplane import ControlPlane, ControlPlaneError, binaries, free_port

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "Kube",
    "KubeApiError",
    "Resolved",
    "binaries",
    "condition",
    "free_port",
]
