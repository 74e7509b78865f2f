"""``kubectl bulkterm`` (also ``bulkterm status|suspend|resume``): a BulkTermination read and
steered as kubectl would, from a laptop, with the caller's own kubeconfig and rights.

:mod:`~bulkterm.plugin.kube` talks to the API server (the kubernetes client, configured from a
kubeconfig as kubectl is: ``--kubeconfig``, ``--context``, ``-n``), :mod:`~bulkterm.plugin.render`
turns a BulkTermination into text (pure, unit-tested), :mod:`~bulkterm.plugin.command` is the
click group behind the ``kubectl-bulkterm`` executable (krew's naming: kubectl runs
``kubectl-bulkterm`` for ``kubectl bulkterm``). It knows neither host of a run (the operator,
``bulkterm apply``) nor kopf: it reads the resource, never the operator.
"""
