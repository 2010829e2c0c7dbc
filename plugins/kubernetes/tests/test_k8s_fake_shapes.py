"""The fake Kubernetes API answers in the API's own shapes: every body it serves is checked against the
OpenAPI models (``k8s_shapes``), read back by the library's deserializer, and by its typed API calls."""

from __future__ import annotations

import json

import aiohttp
import pytest
from k8s_shapes import deserialized, required_fields, shape_problems, validating_client
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

POD = "/api/v1/namespaces/shop/pods/web-7d4b9c-x2x9z"
# (path, query, model): every read endpoint the fake serves, as the tools call them.
ENDPOINTS = [
    ("/api/v1/namespaces", {}, "V1NamespaceList"),
    ("/api/v1/namespaces", {"limit": "1"}, "V1NamespaceList"),
    ("/api/v1/namespaces/shop", {}, "V1Namespace"),
    ("/api/v1/pods", {"limit": "50"}, "V1PodList"),
    ("/api/v1/namespaces/shop/pods", {"labelSelector": "app=web"}, "V1PodList"),
    (POD, {}, "V1Pod"),
    ("/api/v1/namespaces/shop/services", {"limit": "50"}, "V1ServiceList"),
    ("/api/v1/namespaces/shop/services/web", {}, "V1Service"),
    ("/api/v1/nodes", {"limit": "50"}, "V1NodeList"),
    ("/api/v1/nodes/node-1", {}, "V1Node"),
    ("/api/v1/namespaces/shop/events", {"limit": "200"}, "CoreV1EventList"),
    ("/api/v1/namespaces/shop/events", {"fieldSelector": "involvedObject.name=web-7d4b9c-x2x9z,"
                                                         "involvedObject.kind=Pod"}, "CoreV1EventList"),
    ("/api/v1/events", {"limit": "1"}, "CoreV1EventList"),
    ("/apis/apps/v1/namespaces/shop/deployments", {"limit": "50"}, "V1DeploymentList"),
    ("/apis/apps/v1/namespaces/shop/deployments/web", {}, "V1Deployment"),
    ("/apis/apps/v1/namespaces/shop/replicasets", {"limit": "50"}, "V1ReplicaSetList"),
    ("/apis/apps/v1/namespaces/shop/replicasets/web-7d4b9c", {}, "V1ReplicaSet"),
    ("/apis/apps/v1/statefulsets", {"limit": "50"}, "V1StatefulSetList"),
    ("/apis/apps/v1/namespaces/shop/statefulsets/db", {}, "V1StatefulSet"),
    # Served so the tests can prove no tool reaches them.
    ("/api/v1/namespaces/shop/secrets", {}, "V1SecretList"),
    ("/api/v1/namespaces/shop/configmaps/web-config", {}, "V1ConfigMap"),
]


@pytest.fixture
async def get(kube):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {kube.token}"}) as http:
        async def fetch(path: str, query: dict | None = None) -> tuple[int, str, str]:
            async with http.get(kube.url + path, params=query or {}) as response:
                return response.status, response.content_type, await response.text()
        yield fetch


@pytest.fixture
async def library():
    async with validating_client() as client:
        yield client


@pytest.mark.parametrize(("path", "query", "model"), ENDPOINTS, ids=[f"{m}:{p}" for p, _, m in ENDPOINTS])
async def test_every_read_endpoint_answers_in_its_openapi_model(get, library, path, query, model):
    status, content_type, body = await get(path, query)
    assert (status, content_type) == (200, "application/json")
    assert shape_problems(_json(body), model) == []
    assert type(deserialized(library, body, model)).__name__ == model


@pytest.mark.parametrize("plural", ["namespaces", "pods", "events"])
async def test_limit_and_continue_page_through_the_whole_list_once(get, plural):
    path = "/api/v1/" + plural
    _, _, whole = await get(path)
    names, token, pages = [], None, 0
    while True:
        _, _, body = await get(path, {"limit": "1", **({"continue": token} if token else {})})
        page = _json(body)
        names += [o["metadata"]["name"] for o in page["items"]]
        token, pages = page["metadata"].get("continue"), pages + 1
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == len(_json(whole)["items"]) - len(names)
    assert names == [o["metadata"]["name"] for o in _json(whole)["items"]] and pages == len(names)


async def test_a_continue_token_the_server_did_not_issue_is_a_400_status(get):
    status, _, body = await get("/api/v1/pods", {"limit": "1", "continue": "not-a-token-the-fake-gave"})
    assert status == 400 and shape_problems(_json(body), "V1Status") == []
    assert _json(body)["reason"] == "BadRequest" and "continue key is not valid" in _json(body)["message"]


async def test_pod_logs_are_plain_text_not_json(get):
    status, content_type, body = await get(POD + "/log", {"previous": "true", "tailLines": "2"})
    assert (status, content_type) == (200, "text/plain")
    assert body == "loading config\npanic: DATABASE_URL is not set\n"


@pytest.mark.parametrize(("mode", "code", "reason"), [
    ("status", 403, "Forbidden"), ("status", 429, "TooManyRequests"), ("status", 500, "InternalError"),
    ("status", 502, ""), ("status", 503, "ServiceUnavailable"), ("status", 504, "Timeout"),
])
async def test_scripted_failures_answer_a_status_object(kube, get, library, mode, code, reason):
    kube.fail(mode, status=code, retry_after=2 if code == 429 else None)
    status, content_type, body = await get(POD)
    assert (status, content_type) == (code, "application/json")
    assert shape_problems(_json(body), "V1Status") == []
    got = deserialized(library, body, "V1Status")
    assert (got.status, got.code, got.reason or "") == ("Failure", code, reason)
    if code == 429:
        assert got.details.retry_after_seconds == 2


async def test_an_unknown_object_is_a_404_status_naming_it(get, library):
    status, _, body = await get("/api/v1/namespaces/shop/pods/nope")
    assert status == 404 and shape_problems(_json(body), "V1Status") == []
    got = deserialized(library, body, "V1Status")
    assert (got.reason, got.details.name, got.details.kind) == ("NotFound", "nope", "pods")


async def test_a_write_verb_is_a_405_status(kube):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {kube.token}"}) as http:
        async with http.delete(kube.url + POD) as response:
            assert response.status == 405 and shape_problems(await response.json(), "V1Status") == []


async def test_a_wrong_token_is_a_401_status(kube, get):
    kube.token = "another"
    status, _, body = await get("/api/v1/namespaces")
    assert status == 401 and shape_problems(_json(body), "V1Status") == []


async def test_the_library_typed_calls_read_every_kind_through_a_real_kubeconfig(kube, tmp_path):
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    configuration = k8s.Configuration()
    configuration.client_side_validation = True  # a missing required field is a ValueError here
    await k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    async with k8s.ApiClient(configuration) as api_client:
        core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
        assert [n.metadata.name for n in (await core.list_namespace()).items] == ["shop", "kube-system"]
        pod = await core.read_namespaced_pod("web-7d4b9c-x2x9z", "shop")
        assert pod.status.container_statuses[0].last_state.terminated.exit_code == 1
        assert len((await core.list_pod_for_all_namespaces(limit=5)).items) == 1
        log = await core.read_namespaced_pod_log("web-7d4b9c-x2x9z", "shop", previous=True)
        assert log.endswith("DATABASE_URL is not set\n")
        assert (await core.read_namespaced_service("web", "shop")).spec.ports[0].target_port == 8080
        assert (await core.list_node()).items[0].status.node_info.kubelet_version == "v1.31.2"
        assert {e.reason for e in (await core.list_namespaced_event("shop")).items} >= {"BackOff", "Pulled"}
        assert (await apps.read_namespaced_deployment("web", "shop")).spec.template.spec.containers[0].name == "web"
        assert (await apps.list_namespaced_replica_set("shop")).items[0].spec.selector.match_labels == {"app": "web"}
        assert (await apps.read_namespaced_stateful_set("db", "shop")).spec.service_name == "db"
        with pytest.raises(k8s.ApiException) as err:
            await core.read_namespaced_pod("nope", "shop")
        assert err.value.status == 404


# The checker itself: it must catch what it is there to catch.
def test_the_checker_refuses_an_unknown_key_a_wrong_type_and_a_missing_required_field():
    pod = {"kind": "Pod", "metadata": {"name": "p", "labels": {"a": 1}}, "colour": "red",
           "spec": {"containers": [{"image": "x"}], "nodeName": ["node-1"]},
           "status": {"startTime": "yesterday", "containerStatuses": [{"name": "c", "restartCount": True}]}}
    problems = shape_problems(pod, "V1Pod")
    assert "$: V1Pod has no field 'colour'" in problems
    assert "$.metadata.labels.a: expected str, got int 1" in problems
    assert "$.spec.containers[0]: V1Container requires 'name'" in problems
    assert "$.spec.nodeName: expected str, got list ['node-1']" in problems
    assert "$.status.startTime: expected an RFC 3339 date-time, got 'yesterday'" in problems
    assert "$.status.containerStatuses[0]: V1ContainerStatus requires 'image'" in problems
    assert "$.status.containerStatuses[0].restartCount: expected int, got bool True" in problems


def test_the_checker_knows_which_fields_the_spec_requires():
    assert required_fields("V1DeploymentSpec") == ("selector", "template")
    assert required_fields("V1OwnerReference") == ("api_version", "kind", "name", "uid")
    assert required_fields("V1ObjectMeta") == ()


def _json(body: str):
    return json.loads(body)
