"""infra/: the compose file, the KubeRay manifests and the Dockerfiles, checked without Docker or a
cluster. Kubernetes objects are validated against the Kubernetes schemas that kubernetes-validate
ships, compose.yaml against the compose-spec schema that check-jsonschema vendors; the RayCluster
CRD has no packaged schema, so its structure is checked field by field (its pod templates against
the Kubernetes PodTemplate schema). The environment each piece hands the next is read back through
the settings objects that consume it, and the GPU worker group is compared with what
slmflow.cli.infra renders from infra/fleet.gpu.yaml.
"""

from __future__ import annotations

import json
import random
import re
import tomllib
from collections.abc import Iterator, Mapping
from fractions import Fraction
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from slmflow.cli import infra
from slmflow.core.settings import Settings
from workers.cluster import ENGINE_RESOURCE
from workers.fleet import FleetConfig, SmallModelSpec

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
KUBERAY = INFRA / "kuberay"
# A Kubernetes minor version still common on managed clusters; strict = unknown fields are errors.
K8S_VERSION = "1.33"
SECRET_NAME = re.compile(r"PASSWORD|API_KEY|TOKEN|SECRET")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pinned(requirement_prefix: str) -> str:
    for dep in _pyproject()["project"]["dependencies"]:
        if dep.startswith(requirement_prefix):
            return dep.split("==", 1)[1]
    raise AssertionError(f"pyproject.toml pins no {requirement_prefix}")


def _work_pool() -> str:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    pools = {d["work_pool"]["name"] for d in deployments}
    assert len(pools) == 1, pools
    return pools.pop()


def _settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """slmflow's settings as a process with exactly this environment would see them."""
    for name in (
        "RAY_ADDRESS",
        "QDRANT_URL",
        "QDRANT_API_KEY",
        "SLMFLOW_RAY_ADDRESS",
        "SLMFLOW_QDRANT_URL",
        "SLMFLOW_QDRANT_API_KEY",
        "SLMFLOW_FRONTIER_BASE_URL",
        "SLMFLOW_FRONTIER_MODEL",
        "SLMFLOW_FRONTIER_API_KEY",
        "SLMFLOW_FLEET_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


# --- every manifest ------------------------------------------------------------------------------

MANIFESTS = sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_infra_ships_the_manifests() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in MANIFESTS}
    assert {
        "compose.yaml",
        "fleet.gpu.yaml",
        "kuberay/raycluster.yaml",
        "kuberay/prefect-worker.yaml",
        "kuberay/secrets.example.yaml",
    } <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_manifest_parses_to_mappings(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(d, dict) for d in docs)


# --- compose -------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_ONLY_A_REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(:?\?[^}]*|:?-)?\}$")


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation, for the forms compose.yaml uses: $$, ${V}, ${V:?msg}, ${V:-d}."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        found = env.get(name)
        if op in (":?", "?") and not found:
            raise KeyError(f"{name} is required: {arg}")
        if op in (":-", "-") and not found:
            return arg
        return found or ""

    return _INTERPOLATION.sub(sub, value)


def _compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def _dummy_env() -> dict[str, str]:
    return {name: f"dummy-{name.lower()}" for name in _env_example()}


def _flag(command: list[str], flag: str) -> str:
    for arg in command:
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    if flag in command:
        return command[command.index(flag) + 1]
    raise AssertionError(f"{flag} not in {command}")


def test_compose_matches_the_compose_spec_schema() -> None:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator_cls(schema).iter_errors(_compose())]
    assert not errors, "\n".join(errors)


def test_compose_runs_the_whole_stack() -> None:
    assert set(_services()) >= {"postgres", "prefect-server", "qdrant", "ray-head", "ray-gpu-worker", "prefect-worker"}


def test_compose_publishes_ports_on_loopback_only() -> None:
    published = 0
    for name, service in _services().items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                parts = str(port).split(":")
                host_ip = parts[0] if len(parts) == 3 else None
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond loopback"
            published += 1
    assert published, "nothing published: the UI at least should be reachable from the host"
    assert "ports" not in _services()["postgres"]


def test_compose_has_no_inline_secrets() -> None:
    for name, service in _services().items():
        for var, value in _environment(service).items():
            if SECRET_NAME.search(var):
                match = _ONLY_A_REFERENCE.match(value)
                assert match, f"{name}: {var} must be a ${{...}} reference to infra/.env"
            for url in re.findall(r"[a-z+]+://\S+", value):
                password = urlsplit(url).password
                # ${V} is compose's reference, $${V} one that Prefect resolves itself.
                assert password is None or re.fullmatch(r"\$?\$\{[A-Z0-9_]+\}", password), (
                    f"{name}: {var} carries a password inline"
                )


def test_compose_secrets_come_from_the_git_ignored_env_file() -> None:
    example = _env_example()
    referenced = {m.group(1) for value in _strings(_compose()) for m in _INTERPOLATION.finditer(value) if m.group(1)}
    assert referenced <= set(example), f"not in .env.example: {referenced - set(example)}"
    assert all(value == "" for value in example.values()), "the template must hold no values"
    assert ".env" in (INFRA / ".gitignore").read_text().split()


def test_compose_gpu_worker_reserves_nvidia_gpus_and_builds_the_gpu_image() -> None:
    worker = _services()["ray-gpu-worker"]
    assert worker["build"]["dockerfile"] == "infra/Dockerfile.gpu"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    gpu = [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d["capabilities"]]
    assert gpu, devices
    assert gpu[0].get("count") == "all" or int(gpu[0].get("count", 0)) >= 1
    assert _flag(worker["command"], "--address").split(":")[0] == "ray-head"


def test_compose_prefect_worker_reaches_every_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services()
    worker = services["prefect-worker"]
    env = {k: _interpolate(v, _dummy_env()) for k, v in _environment(worker).items()}

    assert worker["command"] == ["prefect", "worker", "start", "--pool", _work_pool()]
    head = urlsplit(env["RAY_ADDRESS"])
    assert head.scheme == "ray" and head.hostname == "ray-head"
    assert str(head.port) == _flag(services["ray-head"]["command"], "--ray-client-server-port")
    api = urlsplit(env["PREFECT_API_URL"])
    assert (api.hostname, api.path) == ("prefect-server", "/api")
    assert str(api.port) == _flag(services["prefect-server"]["command"], "--port")
    assert urlsplit(env["QDRANT_URL"]).hostname == "qdrant"
    assert env["RAY_AUTH_MODE"] == "token"
    for ray_node in ("ray-head", "ray-gpu-worker"):
        node_env = _environment(services[ray_node])
        assert node_env["RAY_AUTH_MODE"] == "token"
        assert node_env["RAY_AUTH_TOKEN"] == _environment(worker)["RAY_AUTH_TOKEN"]
    assert _environment(services["qdrant"])["QDRANT__SERVICE__API_KEY"] == _environment(worker)["QDRANT_API_KEY"]

    settings = _settings_from(env, monkeypatch)
    assert settings.ray_address == env["RAY_ADDRESS"]
    assert settings.qdrant_url == env["QDRANT_URL"]
    assert settings.qdrant_api_key.get_secret_value() == _dummy_env()["QDRANT_API_KEY"]
    assert settings.frontier_base_url == _dummy_env()["SLMFLOW_FRONTIER_BASE_URL"]
    assert settings.frontier_model == _dummy_env()["SLMFLOW_FRONTIER_MODEL"]
    assert settings.frontier_api_key.get_secret_value() == _dummy_env()["SLMFLOW_FRONTIER_API_KEY"]
    assert not settings.uses_standin

    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"] if v.startswith("./")}
    assert (INFRA / mounts[str(settings.fleet_file)]).resolve() == INFRA / "fleet.gpu.yaml"


def test_compose_prefect_server_uses_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services()
    server_env = _environment(services["prefect-server"])
    env = {k: _interpolate(v, _dummy_env()) for k, v in server_env.items()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from prefect.settings import Settings as PrefectSettings

    # Prefect fills ${PREFECT_API_DATABASE_PASSWORD} in the URL itself; read back what it will use.
    url = urlsplit(PrefectSettings().server.database.connection_url.get_secret_value())
    postgres = _environment(services["postgres"])
    assert url.scheme == "postgresql+asyncpg"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.path == f"/{postgres['POSTGRES_DB']}"
    assert url.password == _dummy_env()["POSTGRES_PASSWORD"]
    assert postgres["POSTGRES_PASSWORD"] == _environment(services["prefect-server"])["PREFECT_API_DATABASE_PASSWORD"]
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"


# --- Dockerfiles ---------------------------------------------------------------------------------


def _dockerfile(name: str) -> list[str]:
    text = (INFRA / name).read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _copied(name: str) -> set[str]:
    sources: set[str] = set()
    for line in _dockerfile(name):
        if line.startswith("COPY "):
            sources.update(s.rstrip("/") for s in line.split()[1:-1] if not s.startswith("--"))
    return sources


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_build_python_311_images_of_this_package(name: str) -> None:
    lines = _dockerfile(name)
    assert lines[0].startswith("FROM python:3.11-"), lines[0]
    include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied = _copied(name)
    assert packages <= copied, f"{name} misses {packages - copied}"
    assert {"pyproject.toml", "prefect.yaml", "deployments"} <= copied
    assert "." not in copied, "COPY . would put infra/.env and the venv into the image"
    assert any(re.search(r"RUN .*pip install (\S+ )*\.( |$)", line) for line in lines)
    assert lines[-1].startswith("USER ") and lines[-1] != "USER root"


def test_both_images_lay_out_the_same_sources() -> None:
    # A flow run hands actors paths under /app; they must exist on every node.
    assert _copied("Dockerfile") == _copied("Dockerfile.gpu")


def test_gpu_image_installs_the_cuda_engine_first() -> None:
    lines = _dockerfile("Dockerfile.gpu")
    engine = next(i for i, line in enumerate(lines) if "-r requirements/gpu.txt" in line)
    package = next(i for i, line in enumerate(lines) if re.match(r"RUN pip install \.", line))
    assert engine < package
    assert "vllm==0.32.0" in (ROOT / "requirements" / "gpu.txt").read_text().split()


# --- KubeRay -------------------------------------------------------------------------------------


def _raycluster() -> dict[str, Any]:
    (cluster,) = _docs(KUBERAY / "raycluster.yaml")
    return cluster


def _kind(path: Path, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs(path) if d["kind"] == kind]
    return doc


def _pod_templates(cluster: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "head", cluster["spec"]["headGroupSpec"]["template"]
    for group in cluster["spec"]["workerGroupSpecs"]:
        yield group["groupName"], group["template"]


def _env_vars(pod_template: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for container in pod_template["spec"]["containers"]:
        yield from container.get("env", [])


def _kubernetes_objects() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{p.name}:{d['kind']}", d)
        for p in sorted(KUBERAY.glob("*.yaml"))
        for d in _docs(p)
        if d["apiVersion"] != "ray.io/v1"
    ]


@pytest.mark.parametrize("name, obj", _kubernetes_objects(), ids=lambda x: x if isinstance(x, str) else "")
def test_kubernetes_objects_match_the_kubernetes_schemas(name: str, obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_schema_check_rejects_unknown_fields() -> None:
    deployment = _kind(KUBERAY / "prefect-worker.yaml", "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_raycluster_structure() -> None:
    cluster = _raycluster()
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert DNS_LABEL.match(cluster["metadata"]["name"])
    spec = cluster["spec"]
    assert set(spec) <= {
        "rayVersion",
        "enableInTreeAutoscaling",
        "autoscalerOptions",
        "headGroupSpec",
        "workerGroupSpecs",
        "headServiceAnnotations",
        "suspend",
    }
    assert spec["rayVersion"] == _pinned("ray[default,serve]==")
    head = spec["headGroupSpec"]
    assert set(head) <= {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
    groups = spec["workerGroupSpecs"]
    assert groups
    for group in [head, *groups]:
        params = group["rayStartParams"]
        # A map[string]string in the CRD: an unquoted number or bool is rejected by the API server.
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()), params
    names = [g["groupName"] for g in groups]
    assert len(set(names)) == len(names)
    for group in groups:
        assert set(group) <= {
            "groupName",
            "replicas",
            "minReplicas",
            "maxReplicas",
            "numOfHosts",
            "rayStartParams",
            "template",
            "scaleStrategy",
            "suspend",
        }
        assert DNS_LABEL.match(group["groupName"])
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for name, template in _pod_templates(cluster):
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


def test_raycluster_head_exposes_the_ray_ports() -> None:
    head = _raycluster()["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001}
    assert _raycluster()["spec"]["headGroupSpec"]["rayStartParams"].get("num-gpus") == "0"


def test_raycluster_gpu_group_has_one_gpu_per_pod() -> None:
    groups = _raycluster()["spec"]["workerGroupSpecs"]
    (gpu,) = [g for g in groups if g["groupName"] == infra.GPU_GROUP]
    container = gpu["template"]["spec"]["containers"][0]
    assert str(container["resources"]["limits"][infra.GPU_RESOURCE]) == "1"
    requested = container["resources"].get("requests", {}).get(infra.GPU_RESOURCE)
    assert requested is None or str(requested) == "1"
    assert gpu["rayStartParams"]["num-gpus"] == "1"
    tolerations = gpu["template"]["spec"].get("tolerations", [])
    assert any(t.get("key") == infra.GPU_RESOURCE for t in tolerations)


def test_raycluster_gpu_group_agrees_with_the_example_fleet() -> None:
    fleet = infra.load_fleet(INFRA / "fleet.gpu.yaml")
    # One model per GPU: the example fleet is what the `gpu` group's one-GPU pods are sized for.
    assert all(spec.num_gpus == 1 for spec in fleet.small)
    assert infra.mismatches(_raycluster(), fleet) == []
    assert [g["groupName"] for g in infra.worker_groups(fleet)] == [infra.GPU_GROUP]
    assert infra.main([str(INFRA / "fleet.gpu.yaml"), str(KUBERAY / "raycluster.yaml")]) == 0


def test_images_come_from_one_checkout() -> None:
    cluster = _raycluster()
    head_image = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    worker = _kind(KUBERAY / "prefect-worker.yaml", "Deployment")
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == head_image
    tag = head_image.rsplit(":", 1)[1]
    for _, template in _pod_templates(cluster):
        assert template["spec"]["containers"][0]["image"].endswith(f":{tag}")


def test_prefect_worker_attaches_to_the_head_service(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _kind(KUBERAY / "prefect-worker.yaml", "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["prefect", "worker", "start", "--pool", _work_pool()]
    env = {e["name"]: e.get("value", f"from-secret-{e['name'].lower()}") for e in container["env"]}
    head = urlsplit(env["RAY_ADDRESS"])
    assert head.scheme == "ray"
    assert head.hostname == f"{_raycluster()['metadata']['name']}-head-svc"
    head_container = _raycluster()["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head_ports = head_container["ports"]
    assert head.port == next(p["containerPort"] for p in head_ports if p["name"] == "client")
    assert env["RAY_AUTH_MODE"] == "token"

    settings = _settings_from(env, monkeypatch)
    assert settings.ray_address == env["RAY_ADDRESS"]
    assert settings.qdrant_url == env["QDRANT_URL"] and settings.qdrant_api_key is not None
    assert settings.frontier_api_key is not None and not settings.uses_standin
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.fleet_file.parent) in mounts


def test_network_policy_admits_only_ray_pods_and_the_prefect_worker() -> None:
    cluster_name = _raycluster()["metadata"]["name"]
    policy = _kind(KUBERAY / "prefect-worker.yaml", "NetworkPolicy")["spec"]
    # KubeRay labels every pod of a cluster ray.io/cluster=<name>: head included.
    assert policy["podSelector"] == {"matchLabels": {"ray.io/cluster": cluster_name}}
    assert policy["policyTypes"] == ["Ingress"]
    worker_labels = _kind(KUBERAY / "prefect-worker.yaml", "Deployment")["spec"]["template"]["metadata"]["labels"]
    client_port = 10001
    seen = set()
    for rule in policy["ingress"]:
        (peer,) = rule["from"]
        assert set(peer) == {"podSelector"}, "no namespace or IP-block peers"
        labels = peer["podSelector"]["matchLabels"]
        if labels == {"ray.io/cluster": cluster_name}:
            seen.add("ray")
        else:
            assert labels.items() <= worker_labels.items(), labels
            assert rule["ports"] == [{"protocol": "TCP", "port": client_port}]
            seen.add("worker")
    assert seen == {"ray", "worker"}


def test_secret_references_exist_in_the_template_and_hold_placeholders() -> None:
    secret = _kind(KUBERAY / "secrets.example.yaml", "Secret")
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}
    assert "kuberay/secrets.yaml" in (INFRA / ".gitignore").read_text().split()
    templates = [t for _, t in _pod_templates(_raycluster())]
    templates.append(_kind(KUBERAY / "prefect-worker.yaml", "Deployment")["spec"]["template"])
    refs = 0
    for template in templates:
        for var in _env_vars(template):
            if SECRET_NAME.search(var["name"]):
                assert "value" not in var, f"{var['name']} is inline; take it from the Secret"
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs += 1
                assert ref["name"] == secret["metadata"]["name"]
                assert ref.get("optional") or ref["key"] in secret["stringData"], ref
    assert refs


def test_every_ray_container_uses_token_auth() -> None:
    for name, template in _pod_templates(_raycluster()):
        env = {e["name"]: e for e in _env_vars(template)}
        assert env["RAY_AUTH_MODE"]["value"] == "token", name
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "ray-auth-token", name


# --- slmflow.cli.infra -------------------------------------------------------------------------------


def _fleet(*specs: dict[str, Any]) -> FleetConfig:
    return FleetConfig(small=[SmallModelSpec(name=f"m{i}", **s) for i, s in enumerate(specs)])


def test_worker_group_renders_gpus_per_pod_and_replicas() -> None:
    group = infra.worker_group(_fleet({"replicas": 2, "num_gpus": 1}, {"num_gpus": 1}))
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 3)
    assert group["rayStartParams"] == {"num-gpus": "1"}
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"] == {infra.GPU_RESOURCE: "1"}


def test_cpu_engines_get_the_custom_resource_the_fleet_requests() -> None:
    fleet = _fleet({"replicas": 2})
    (group,) = infra.worker_groups(fleet)
    assert group["groupName"] == infra.CPU_GROUP and group["replicas"] == 2
    advertised = json.loads(json.loads(group["rayStartParams"]["resources"]))
    assert advertised == fleet.small[0].placement().resources == {ENGINE_RESOURCE: 1}
    assert group["rayStartParams"]["num-gpus"] == "0"
    assert "resources" not in group["template"]["spec"]["containers"][0]
    with pytest.raises(KeyError):
        infra.worker_group(fleet, infra.GPU_GROUP)


def _tp(n: int, **spec: Any) -> dict[str, Any]:
    """A member sharded over `n` GPUs (tensor parallel), as a fleet file writes it."""
    return {"num_gpus": n, "engine_args": {"tensor_parallel_size": n}, **spec}


def test_mixed_gpu_needs_size_every_pod_for_the_largest() -> None:
    groups = infra.worker_groups(_fleet({"num_gpus": 0.5, "replicas": 2}, _tp(2), {}))
    assert [(g["groupName"], g["replicas"], g["rayStartParams"]["num-gpus"]) for g in groups] == [
        (infra.GPU_GROUP, 3, "2"),
        (infra.CPU_GROUP, 1, "0"),
    ]


def test_a_tensor_parallel_replica_gets_its_gpus_on_one_pod_and_an_endpoint_none() -> None:
    fleet = _fleet(_tp(4), {"model": "Qwen/Qwen3-8B", "base_url": "http://vllm:8000/v1", "kinds": ["answer"]})
    (group,) = infra.worker_groups(fleet)
    assert (group["groupName"], group["replicas"], group["rayStartParams"]["num-gpus"]) == (infra.GPU_GROUP, 1, "4")


def test_a_fractional_gpu_count_above_one_is_refused() -> None:
    with pytest.raises(ValueError, match="whole"):
        infra.worker_groups(_fleet({"num_gpus": 1.5}))


def test_mismatches_name_what_differs(tmp_path: Path) -> None:
    cluster = _raycluster()
    bigger = _fleet({"num_gpus": 1, "replicas": 4})
    problems = infra.mismatches(cluster, bigger)
    assert any("replicas is 3, the fleet needs 4" in p for p in problems)
    two_gpus = _fleet(_tp(2, replicas=3))
    assert any("num-gpus" in p for p in infra.mismatches(cluster, two_gpus))
    assert any("nvidia.com/gpu" in p for p in infra.mismatches(cluster, two_gpus))
    assert infra.mismatches(cluster, _fleet({})) == ["workerGroupSpecs has no group 'cpu'"]

    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump({"small": [{"name": "m", "num_gpus": 1, "replicas": 4}]}))
    assert infra.main([str(fleet_file), str(KUBERAY / "raycluster.yaml")]) == 1
    assert infra.main([str(fleet_file)]) == 0
    assert infra.main([]) == 2


def _fits(pod: dict[str, Any], gpus: Fraction, custom: Mapping[str, float]) -> list[int] | None:
    """Which of the pod's GPUs a replica would take, as Ray allots them; None if it does not fit."""
    if any(pod["custom"].get(k, 0) < v for k, v in custom.items()):
        return None
    if gpus == 0:
        return []
    if gpus < 1:
        return next(([i] for i, free in enumerate(pod["gpus"]) if free >= gpus), None)
    whole = [i for i, free in enumerate(pod["gpus"]) if free == 1][: int(gpus)]
    return whole if len(whole) == gpus else None


@hsettings(max_examples=60, deadline=None)
@given(
    specs=st.lists(
        st.fixed_dictionaries({"num_gpus": st.sampled_from([0, 0.25, 0.5, 1, 2, 4]), "replicas": st.integers(1, 4)}),
        min_size=1,
        max_size=5,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_replica_finds_a_pod_whatever_order_ray_places_them(specs: list[dict[str, Any]], seed: int) -> None:
    # More than one GPU per replica is a sharded engine: its GPUs on one node.
    fleet = _fleet(*(_tp(int(s["num_gpus"]), **s) if s["num_gpus"] > 1 else s for s in specs))
    pods = []
    for group in infra.worker_groups(fleet):
        custom = json.loads(json.loads(group["rayStartParams"].get("resources", '"{}"')))
        for _ in range(group["replicas"]):
            pods.append({"gpus": [Fraction(1)] * int(group["rayStartParams"]["num-gpus"]), "custom": dict(custom)})
    replicas = [(Fraction(str(p.gpus)), p.resources) for p in fleet.replicas()]
    rng = random.Random(seed)
    rng.shuffle(replicas)
    for gpus, custom in replicas:
        options = [(pod, taken) for pod in pods if (taken := _fits(pod, gpus, custom)) is not None]
        assert options, f"no pod fits a replica needing {gpus} GPUs and {custom}"
        pod, taken = rng.choice(options)
        for i in taken:
            pod["gpus"][i] -= min(gpus, 1)
        for k, v in custom.items():
            pod["custom"][k] -= v


# --- README --------------------------------------------------------------------------------------


def test_readme_gives_the_order_of_operations() -> None:
    text = (INFRA / "README.md").read_text()
    for step in (
        "helm install kuberay-operator",
        "kubectl apply -f infra/kuberay/secrets.yaml",
        "kubectl apply -f infra/kuberay/raycluster.yaml",
        "prefect work-pool create local --type process",
        "prefect --no-prompt deploy --all",
        "kubectl apply -f infra/kuberay/prefect-worker.yaml",
        "docker compose -f infra/compose.yaml up -d prefect-worker",
    ):
        assert step in text, step
    kuberay = text[text.index("## KubeRay") :]
    order = [
        "helm install kuberay-operator",
        "kubectl apply -f infra/kuberay/secrets.yaml",
        "kubectl apply -f infra/kuberay/raycluster.yaml",
        "kubectl apply -f infra/kuberay/prefect-worker.yaml",
        "prefect work-pool create",
        "prefect --no-prompt deploy --all",
    ]
    positions = [kuberay.index(step) for step in order]
    assert positions == sorted(positions), order
    for variable in ("RAY_ADDRESS", "PREFECT_API_URL", "QDRANT_URL", "SLMFLOW_FRONTIER_BASE_URL"):
        assert f"`{variable}" in text, variable
    assert "| Ray | private local cluster started by the flow process |" in text


# --- Grafana -------------------------------------------------------------------------------------


def _vllm_metric_names() -> set[str]:
    """Every metric vLLM's stat loggers define, as Ray exports them (`ray_` prefix, `:` -> `_`,
    counters with `_total`), read from the installed vLLM's source."""
    from importlib.util import find_spec

    spec = find_spec("vllm")
    if spec is None or spec.origin is None:
        pytest.skip("vLLM is not installed")
    source = (Path(spec.origin).parent / "v1" / "metrics" / "loggers.py").read_text()
    found = re.findall(r"_(gauge|counter|histogram)_cls\(\s*name=\"vllm:([a-z_]+)\"", source)
    assert found, "vLLM's metric definitions moved"
    names = set()
    for kind, name in found:
        base = f"ray_vllm_{name}"
        names |= {f"{base}_total"} if kind == "counter" else {base, f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return names


def test_grafana_dashboard_charts_only_metrics_the_fleet_exports() -> None:
    from workers import metrics

    dashboard = json.loads((INFRA / "grafana" / "slmflow.json").read_text())
    ours = {f"ray_{metrics.ENGINE_IN_FLIGHT}"} | {
        f"ray_{name}_total"
        for name in (
            metrics.ENGINE_REQUESTS,
            metrics.ENGINE_TOKENS,
            metrics.ENGINE_PROMPT_TOKENS,
            metrics.ENGINE_SECONDS,
            metrics.UNITS,
            metrics.COST_USD,
            metrics.FRONTIER_USD,
            metrics.COUNTERFACTUAL_USD,
        )
    }
    known = ours | _vllm_metric_names()
    charted = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            charted |= set(re.findall(r"\bray_[a-z_]+", target["expr"]))
    assert charted and charted <= known, charted - known
    # What the issue asks a Prometheus user to find: tokens/s, running and waiting requests,
    # KV-cache use, outcomes per kind, frontier spend.
    for name in (
        "ray_vllm_generation_tokens_total",
        "ray_vllm_num_requests_running",
        "ray_vllm_num_requests_waiting",
        "ray_vllm_kv_cache_usage_perc",
        "ray_slmflow_units_total",
        "ray_slmflow_frontier_usd_total",
    ):
        assert name in charted, name
    assert [p["id"] for p in dashboard["panels"]] == list(range(1, len(dashboard["panels"]) + 1))


def test_the_readmes_fleet_file_is_a_valid_fleet() -> None:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("A fleet file (") :]
    block = block[block.index("```yaml\n") + len("```yaml\n") : block.index("```\n", block.index("```yaml"))]
    fleet = FleetConfig.model_validate(yaml.safe_load(block))
    members = {s.name: s for s in fleet.small}
    assert members["qwen3-8b"].placement().bundles == [{"GPU": 1.0}, {"GPU": 1.0}]
    assert members["gemma-1b"].placement().memory_share == pytest.approx(0.425)
    assert members["team-b"].endpoint and members["team-b"].structured_output == "vllm"
