"""A small cluster in the API's JSON shapes (core/v1 and apps/v1, as in api/openapi-spec/v3): one crash-looping pod."""

from __future__ import annotations

T0 = "2026-12-01T08:00:00Z"
T1 = "2026-12-01T20:10:00Z"
SECRET_VALUE = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk"  # base64 of a password no tool may ever show
CONFIG_VALUE = "feature_flags=do-not-leak"


def _meta(name: str, namespace: str | None = "shop", **extra) -> dict:
    meta = {"name": name, "uid": f"uid-{name}", "resourceVersion": "101", "creationTimestamp": T0, **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


def crashing_pod() -> dict:
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": _meta("web-7d4b9c-x2x9z", labels={"app": "web"},
                          ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                                            "uid": "uid-web-7d4b9c", "controller": True}]),
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "shop/web:1.4.2"}]},
        "status": {
            "phase": "Running", "podIP": "10.1.2.3", "startTime": T0,
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                            "message": "containers with unready status: [web]"}],
            "containerStatuses": [{
                "name": "web", "image": "shop/web:1.4.2", "imageID": "docker.io/shop/web@sha256:ab",
                "ready": False, "started": False, "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 5m0s restarting failed container=web"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": T1, "finishedAt": T1,
                                             "containerID": "containerd://abc"}},
            }],
        },
    }


def objects() -> list[dict]:
    return [
        {"kind": "Namespace", "apiVersion": "v1", "metadata": _meta("shop", None), "spec": {"finalizers": ["kubernetes"]},
         "status": {"phase": "Active"}},
        {"kind": "Namespace", "apiVersion": "v1", "metadata": _meta("kube-system", None), "status": {"phase": "Active"}},
        crashing_pod(),
        {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": _meta("web", labels={"app": "web"}),
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": "shop/web:1.4.2"}]}}},
         "status": {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 0, "unavailableReplicas": 1,
                    "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                                    "message": "Deployment does not have minimum availability."}]}},
        {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": _meta("web-7d4b9c"),
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}},
         "status": {"replicas": 1, "readyReplicas": 0}},
        {"kind": "StatefulSet", "apiVersion": "apps/v1", "metadata": _meta("db"),
         "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}},
         "status": {"replicas": 1, "readyReplicas": 1, "currentReplicas": 1}},
        {"kind": "Service", "apiVersion": "v1", "metadata": _meta("web"),
         "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                  "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}},
        {"kind": "Node", "apiVersion": "v1",
         "metadata": _meta("node-1", None, labels={"node-role.kubernetes.io/worker": ""}),
         "spec": {"podCIDR": "10.1.0.0/24"},
         "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                    "nodeInfo": {"kubeletVersion": "v1.31.2"}}},
        _event("web-7d4b9c-x2x9z.1", "Pod", "web-7d4b9c-x2x9z", "Warning", "BackOff",
               "Back-off restarting failed container web in pod web-7d4b9c-x2x9z", 31),
        _event("web-7d4b9c-x2x9z.2", "Pod", "web-7d4b9c-x2x9z", "Normal", "Pulled",
               'Container image "shop/web:1.4.2" already present on machine', 8),
        _event("db-0.1", "StatefulSet", "db", "Normal", "SuccessfulCreate", "create Pod db-0 in StatefulSet db", 1),
        {"kind": "Secret", "apiVersion": "v1", "metadata": _meta("db-password"), "type": "Opaque",
         "data": {"password": SECRET_VALUE}},
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": _meta("web-config"), "data": {"app.ini": CONFIG_VALUE}},
    ]


def _event(name, kind, obj, type_, reason, message, count) -> dict:
    return {"kind": "Event", "apiVersion": "v1", "metadata": _meta(name),
            "involvedObject": {"kind": kind, "namespace": "shop", "name": obj, "uid": f"uid-{obj}", "apiVersion": "v1"},
            "reason": reason, "message": message, "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": T0, "lastTimestamp": T1, "count": count, "type": type_,
            "reportingComponent": "kubelet", "reportingInstance": "node-1"}


CRASH_LOG = "starting web 1.4.2\nloading config\npanic: DATABASE_URL is not set\n"
