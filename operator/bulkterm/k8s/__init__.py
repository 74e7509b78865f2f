"""The Kubernetes layer: the only code that knows kopf. Maps CRs to engine runs and back."""
