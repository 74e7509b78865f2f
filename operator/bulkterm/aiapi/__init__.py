"""The SAP AI Core AI API client (httpx, async). Knows nothing of Kubernetes or kopf."""
