"""Read-only Kubernetes inspection for BMO's agent: tools, their retry path, posture and config."""
