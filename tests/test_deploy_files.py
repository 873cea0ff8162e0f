"""Static checks of the Docker files (no Docker engine runs here, so they cannot be built in tests)."""

from __future__ import annotations

import json
import re

import yaml

from app import model_store
from app.tasks.catalog import RUNTIMES

from tests.conftest import REPO


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_builds_a_gpu_image_that_serves_as_non_root_with_a_healthcheck():
    instructions = _instructions()
    args = {v.split("=", 1)[0]: v.split("=", 1)[1].strip('"') for k, v in instructions if k == "ARG" and "=" in v}
    assert args["TENSORFLOW"].startswith("tensorflow[and-cuda]==")
    users = [v for k, v in instructions if k == "USER"]
    assert users and users[-1] not in {"root", "0"}
    healthcheck = next(v for k, v in instructions if k == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    cmd = next(v for k, v in reversed(instructions) if k == "CMD")
    assert "app.server" in cmd and "0.0.0.0" in cmd  # uvicorn with bounds on slow clients
    copies = [v for k, v in instructions if k == "COPY"]
    (models,) = [c for c in copies if re.search(r"\bmodels\b", c)]  # the bundled models are in the image
    assert "--chown" not in models, "root owns the models: the service user cannot change them"
    assert not any(re.search(r"\btraining\b", c) for c in copies), "the serving image holds the service, not training"
    assert "8000" in next(v for k, v in instructions if k == "EXPOSE")


def test_compose_reserves_an_nvidia_gpu_and_has_a_cpu_fallback():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    gpu = services["api-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "and-cuda" in gpu["build"]["args"]["TENSORFLOW"]
    cpu = services["api-cpu"]
    assert "cpu" in cpu["profiles"] and "deploy" not in cpu
    assert "and-cuda" not in cpu["build"]["args"]["TENSORFLOW"]
    for service in (gpu, cpu):
        assert "8000:8000" in service["ports"]


def test_dockerignore_keeps_the_models_and_drops_the_venv():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "models" not in ignored


def test_compose_runs_replicas_behind_nginx_with_the_tested_template():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    api, lb = services["api"], services["lb"]
    assert api["profiles"] == lb["profiles"] == ["lb"]
    assert api["deploy"]["replicas"] >= 2 and "ports" not in api  # only nginx is published
    assert lb["image"].startswith("nginx:") and lb["depends_on"]["api"]["condition"] == "service_healthy"
    (volume,) = lb["volumes"]
    source, target = volume.split(":")[:2]
    assert (REPO / source).resolve() == REPO / "deploy" / "nginx" / "api.conf.template"
    assert target.startswith("/etc/nginx/templates/") and target.endswith(".template")
    # nginx's limit is the app's, and the template uses every variable compose sets.
    assert lb["environment"]["NGINX_MAX_BODY_BYTES"] == api["environment"]["APP_MAX_BODY_BYTES"]
    template = (REPO / source).read_text()
    assert all("${" + name + "}" in template for name in lb["environment"])
    assert "server api:8000" in lb["environment"]["NGINX_UPSTREAM_SERVERS"]
    assert lb["environment"]["NGINX_HTTPS_PORT"] + ":" + lb["environment"]["NGINX_HTTPS_PORT"] in " ".join(lb["ports"])


def test_compose_replicas_take_keys_from_a_secret_and_share_quotas_in_redis():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    api, redis = compose["services"]["api"], compose["services"]["redis"]
    assert api["environment"]["APP_API_KEYS_FILE"] == "/run/secrets/api_keys" and "api_keys" in api["secrets"]
    assert api["environment"]["APP_RATE_LIMIT_STORAGE"].startswith("redis://redis:")
    assert redis["image"].startswith("redis:") and "ports" not in redis  # not published
    assert set(compose["secrets"]) == {"api_keys", "tls_cert", "tls_key"}
    assert "secrets/" in (REPO / ".gitignore").read_text().split()


def test_compose_tfserving_profile_serves_every_bundled_model_through_tensorflow_serving():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    tfserving, api = services["tfserving"], services["api-tfserving"]
    assert tfserving["image"].startswith("tensorflow/serving:") and "8501" in " ".join(tfserving["command"])
    (device,) = tfserving["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert api["environment"]["APP_TFSERVING_URL"] == "http://tfserving:8501"
    backends = json.loads(api["environment"]["APP_BACKENDS"])
    bundled = model_store.models(REPO / "models", set(RUNTIMES))  # model → task
    assert backends == {task: "tfserving" for task in bundled.values()}  # by task: each of its models
    config = (REPO / "deploy" / "tfserving" / "models.config").read_text()
    assert set(re.findall(r'name: "([\w-]+)" base_path: "/models/\1"', config)) == set(bundled)
    assert "./models:/models:ro" in tfserving["volumes"]


def _k8s() -> dict[str, dict]:
    """Every manifest in k8s/, by ``kind/name``."""
    documents = [d for p in sorted((REPO / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}


def test_k8s_deployment_probes_the_health_endpoints_and_requests_a_gpu():
    manifests = _k8s()
    deployment = manifests["Deployment/model-serving"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["ports"][0]["containerPort"] == 8000
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels == manifests["Service/model-serving"]["spec"]["selector"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["APP_API_KEYS_FILE"].startswith(mounts["api-keys"] + "/")
    assert env["APP_RATE_LIMIT_STORAGE_PASSWORD_FILE"].startswith(mounts["redis-password"] + "/")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] and env["APP_RATE_LIMIT_STORAGE"].startswith("redis://")


def test_k8s_pods_start_hardened():
    manifests = _k8s()
    for name in ("Deployment/model-serving", "Deployment/redis"):
        pod = manifests[name]["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        mounted_secrets = [v for v in pod["volumes"] if "secret" in v]
        assert all(v["secret"]["defaultMode"] == 0o440 for v in mounted_secrets) and pod["securityContext"]["fsGroup"]
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"] and "cpu" in container["resources"]["limits"]
            assert not any("valueFrom" in e for e in container.get("env", [])), "secrets are files, not variables"
    api_pod = manifests["Deployment/model-serving"]["spec"]["template"]["spec"]
    assert {"name": "tmp", "mountPath": "/tmp"} in api_pod["containers"][0]["volumeMounts"]  # the one writable place
    assert manifests["NetworkPolicy/model-serving"]["spec"]["podSelector"]["matchLabels"] == {"app": "model-serving"}
    assert manifests["NetworkPolicy/redis"]["spec"]["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "model-serving"}}}]


def test_addresses_are_trusted_only_from_the_proxies():
    """uvicorn takes X-Forwarded-For only from FORWARDED_ALLOW_IPS: never "*", and in compose nginx's own address."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    trusted = compose["services"]["api"]["environment"]["FORWARDED_ALLOW_IPS"]
    assert trusted == compose["services"]["lb"]["networks"]["default"]["ipv4_address"]
    (container,) = _k8s()["Deployment/model-serving"]["spec"]["template"]["spec"]["containers"]
    assert "*" not in {e["name"]: e.get("value") for e in container["env"]}["FORWARDED_ALLOW_IPS"]
    template = (REPO / "deploy" / "nginx" / "api.conf.template").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in template  # overwritten, never appended
    assert "$proxy_add_x_forwarded_for" not in template


def test_nginx_sends_no_version_no_weak_tls_and_replays_only_predictions():
    template = (REPO / "deploy" / "nginx" / "api.conf.template").read_text()
    assert template.count("server_tokens off;") == 2
    ciphers = re.search(r"ssl_ciphers ([^;]+);", template).group(1).split(":")
    assert ciphers and all(c.startswith(("ECDHE-", "DHE-")) for c in ciphers)  # forward secrecy only
    locations = dict(re.findall(r"location ([^{]+?) \{(.*?)\}", template, re.S))
    assert "non_idempotent" not in locations["/"]
    (predictions,) = [body for where, body in locations.items() if where.startswith("~")]
    assert "non_idempotent" in predictions and "timeout" not in predictions


def test_k8s_autoscaler_targets_the_deployment():
    manifests = _k8s()
    hpa = manifests["HorizontalPodAutoscaler/model-serving"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == manifests["Deployment/model-serving"]["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
