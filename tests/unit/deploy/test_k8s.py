"""deploy/k8s: manifests, command lines, probes, ports, replicas, ConfigMap, Secret, TLS."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.unit.deploy.cli_lines import (
    K8S,
    LOOPBACK,
    SERVES_LOOPBACK,
    Parsed,
    envvar_problems,
    global_envvars,
)
from tests.unit.deploy.k8s import (
    _K8S_VAR,
    k8s_containers,
    k8s_documents,
    k8s_named,
    kustomization,
    secret_keys,
)

# --- Kubernetes -----------------------------------------------------------------------


def test_kustomization_names_files_that_exist_and_every_manifest() -> None:
    kust = kustomization()
    assert kust["kind"] == "Kustomization"
    named: set[str] = set(kust.get("resources") or [])
    for key in ("components", "crds", "patchesStrategicMerge"):
        named.update(kust.get(key) or [])
    for patch in kust.get("patches") or []:
        if "path" in patch:
            named.add(patch["path"])
    for generator in (kust.get("configMapGenerator") or []) + (kust.get("secretGenerator") or []):
        for entry in (generator.get("files") or []) + (generator.get("envs") or []):
            named.add(entry.split("=")[-1])
    for name in named:
        assert (K8S / name).is_file(), f"kustomization names missing {name}"
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert manifests <= named, f"not in the kustomization: {manifests - named}"
    for doc in k8s_documents():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"].get("name"), doc
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in k8s_documents())
    assert ("ConfigMap", "helixpy") in kinds and ("Secret", "helixpy") in kinds, kinds


def test_k8s_images_are_helixpy_and_no_zookeeper_is_deployed() -> None:
    images = {item["name"] for item in kustomization().get("images") or []}
    for container in k8s_containers():
        image = container.spec["image"].split(":")[0]
        assert "zookeeper" not in image
        assert image in images, f"{container.workload}: image {image} not set by kustomization"


def test_k8s_command_lines_and_probes_exist_in_the_cli() -> None:
    problems = []
    roles = []
    for container in k8s_containers():
        for line in container.main:
            problems += [f"{line.where}: {p}" for p in line.problems]
            roles.append(line.role)
        for kind in ("livenessProbe", "readinessProbe"):
            assert kind in container.probes, f"{container.workload}: no {kind}"
        for probe in container.probes.values():
            if isinstance(probe, Parsed):
                problems += [f"{probe.where}: {p}" for p in probe.problems]
        for arg in container.spec.get("args") or []:
            for name in _K8S_VAR.findall(str(arg)):
                if name not in container.env:
                    problems.append(f"{container.workload}: $({name}) is not in its env")
    assert problems == []
    assert sorted(r for r in roles if r) == ["controller", "participant"], roles


def test_k8s_probes_and_ports_match_the_daemon_options() -> None:
    services = k8s_named("Service")
    for container in k8s_containers():
        [daemon] = container.main
        assert daemon.role is not None
        port = daemon.value("--metrics-port")
        assert port is not None, f"{container.workload}: give --metrics-port"
        ports = {p.get("name"): p["containerPort"] for p in container.spec.get("ports") or []}
        assert str(ports.get("metrics")) == port, f"{container.workload}: {ports} vs {port}"
        for kind, probe in container.probes.items():
            where = f"{container.workload} {kind}"
            if isinstance(probe, Parsed):
                assert probe.health_of == daemon.role, f"{where}: {probe.argv}"
                assert probe.value("--port") == port, f"{where}: not --metrics-port {port}"
                assert probe.value("--host") in LOOPBACK | {None}, where
                assert daemon.value("--metrics-host") in SERVES_LOOPBACK, where
            else:
                target = probe["httpGet"]["port"]
                assert str(ports.get(target, target)) == port, where
        if daemon.role == "controller":
            grpc = daemon.value("--grpc-port")
            assert grpc is not None and str(ports.get("grpc")) == grpc
            host = daemon.value("--grpc-host") or ""
            [var] = _K8S_VAR.findall(host) or [host]
            source = container.sources.get(var, {})
            assert source.get("fieldRef", {}).get("fieldPath") == "status.podIP", (
                f"--grpc-host {host}: the leader publishes it; bind the pod IP"
            )
            labels = container.pod.get("labels") or {}
            mine = [
                s
                for s in services.values()
                if s["spec"]["selector"].items() <= _template_labels(container.workload).items()
            ]
            assert mine, f"no Service selects {container.workload} {labels}"
            for svc in mine:
                svc_ports = svc["spec"]["ports"]
                assert any(
                    str(p["port"]) == grpc
                    and str(ports.get(p.get("targetPort"), p.get("targetPort", p["port"]))) == grpc
                    for p in svc_ports
                ), f"Service {svc['metadata']['name']}: {svc_ports} vs --grpc-port {grpc}"


def _template_labels(workload: str) -> dict[str, str]:
    for doc in k8s_documents():
        if doc["metadata"]["name"] == workload and "template" in doc.get("spec", {}):
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{workload}: selector vs labels"
            return dict(labels)
    raise AssertionError(workload)


def test_k8s_workloads_replicas_ids_tags_capacity_and_grace() -> None:
    workloads = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"}
    for container in k8s_containers():
        [daemon] = container.main
        doc = workloads[container.workload]
        if daemon.role == "controller":
            assert doc["spec"]["replicas"] == 2
            continue
        instance = daemon.value("--instance") or ""
        [var] = _K8S_VAR.findall(instance) or [""]
        assert container.sources.get(var, {}).get("fieldRef", {}).get("fieldPath") == (
            "metadata.name"
        ), f"--instance {instance}: the pod name, from the downward API"
        args = [str(a) for a in container.spec.get("args") or []]
        for option in ("--tags", "--capacity", "--tasks"):
            assert option in args, f"{container.workload}: give {option}"
            value = args[args.index(option) + 1]
            assert _K8S_VAR.fullmatch(value), f"{option} {value}: from the environment"
        grace = float(daemon.value("--grace") or 0)
        stop = float(container.pod.get("terminationGracePeriodSeconds", 30))
        assert stop > grace, f"terminationGracePeriodSeconds {stop} <= --grace {grace}"
        user = container.pod.get("securityContext", {})
        assert user.get("runAsNonRoot") is True


def test_k8s_configmap_and_secret_are_what_the_pods_consume() -> None:
    configmaps = k8s_named("ConfigMap")
    secrets = k8s_named("Secret")
    known = global_envvars()
    assert {"HELIXPY_ZK", "HELIXPY_CLUSTER"} <= set(configmaps["helixpy"]["data"])
    assert {"zk-auth", "token"} <= secret_keys(secrets["helixpy"])
    for cm in configmaps.values():
        for key in cm.get("data") or {}:
            assert key in known, f"ConfigMap {cm['metadata']['name']}: the CLI reads no {key}"
        assert envvar_problems(cm.get("data") or {}, cm["metadata"]["name"]) == []
    for container in k8s_containers():
        where = container.workload
        for ref in container.spec.get("envFrom") or []:
            name = (ref.get("configMapRef") or ref.get("secretRef") or {}).get("name")
            assert name in configmaps or name in secrets, f"{where}: envFrom {name}"
        for var, source in container.sources.items():
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["key"] in secret_keys(secrets[ref["name"]]), f"{where}: {var}"
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in configmaps[ref["name"]]["data"], f"{where}: {var}"
            if var.startswith("HELIXPY_"):
                args = " ".join(map(str, container.spec.get("args") or []))
                assert var in known or f"$({var})" in args, f"{where}: nothing reads {var}"
        auth = container.sources.get("HELIXPY_ZK_AUTH", {}).get("secretKeyRef", {})
        assert auth.get("name") in secrets, f"{where}: HELIXPY_ZK_AUTH from the Secret"
        [daemon] = container.main
        if daemon.role == "controller":
            token = container.sources.get("HELIXPY_TOKEN", {}).get("secretKeyRef", {})
            assert token.get("name") in secrets, f"{where}: HELIXPY_TOKEN from the Secret"


def test_k8s_tls_paths_are_files_of_a_mounted_secret() -> None:
    secrets = k8s_named("Secret")
    seen = 0
    for container in k8s_containers():
        volumes = {v["name"]: v for v in container.pod.get("volumes") or []}
        files: set[str] = set()
        for mount in container.spec.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "secret" not in volume:
                continue
            secret = volume["secret"]
            keys = secret_keys(secrets[secret["secretName"]])
            items = secret.get("items") or [{"key": k, "path": k} for k in keys]
            for item in items:
                assert item["key"] in keys, f"{container.workload}: no key {item['key']}"
                files.add(f"{mount['mountPath'].rstrip('/')}/{item['path']}")
        for daemon in container.main:
            for option in ("--tls-cert", "--tls-key", "--tls-client-ca"):
                value = daemon.options.get(option)
                if value is not None:
                    assert value in files, f"{container.workload} {option} {value}: {files}"
                    seen += 1
    assert seen >= 2, "the controllers serve TLS from the Secret"


def test_kubectl_renders_the_base() -> None:
    kubectl = shutil.which("kubectl") or shutil.which("kustomize")
    if kubectl is None:
        pytest.skip("neither kubectl nor kustomize is installed: the render is not checked")
    argv = (
        [kubectl, "kustomize", str(K8S)]
        if kubectl.endswith("kubectl")
        else [kubectl, "build", str(K8S)]
    )
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    rendered = sorted(
        (d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out.stdout) if d
    )
    assert rendered == sorted((d["kind"], d["metadata"]["name"]) for d in k8s_documents())
