"""bulk-termination-operator: stop and delete SAP AI Core deployments and executions in bulk."""

__version__ = "0.1.0"
