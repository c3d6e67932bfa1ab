"""Reading the kustomize base deploy/k8s: its documents and their containers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tests.unit.deploy.cli_lines import K8S, Parsed, is_helixpy, parse

# --- Kubernetes ---------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for resource in kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text()):
            if doc is not None:
                docs.append(doc)
    return docs


def k8s_named(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}


def secret_keys(secret: Mapping[str, Any]) -> set[str]:
    return set(secret.get("stringData") or {}) | set(secret.get("data") or {})


@dataclass
class Container:
    workload: str
    pod: dict[str, Any]
    spec: dict[str, Any]
    env: dict[str, str | None]  # name -> literal value, None when only known at run time
    sources: dict[str, dict[str, Any]]  # name -> its valueFrom
    main: list[Parsed]
    probes: dict[str, Parsed | dict[str, Any]]


_K8S_VAR = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def k8s_containers() -> list[Container]:
    configmaps = k8s_named("ConfigMap")
    out = []
    for doc in k8s_documents():
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for spec in pod["containers"]:
            env: dict[str, str | None] = {}
            sources: dict[str, dict[str, Any]] = {}
            for ref in spec.get("envFrom") or []:
                cm = configmaps.get(ref.get("configMapRef", {}).get("name", ""))
                if cm is not None:
                    env.update({k: str(v) for k, v in (cm.get("data") or {}).items()})
            for item in spec.get("env") or []:
                env[item["name"]] = None if "valueFrom" in item else str(item.get("value", ""))
                if "valueFrom" in item:
                    sources[item["name"]] = item["valueFrom"]
            where = f"k8s {doc['metadata']['name']}/{spec['name']}"

            def resolve(word: str, env: dict[str, str | None] = env) -> str:
                def sub(m: re.Match[str]) -> str:
                    value = env.get(m.group(1))
                    return value if value is not None else m.group(0)

                return _K8S_VAR.sub(sub, word)

            argv = [*(spec.get("command") or ["helixpy"]), *(spec.get("args") or [])]
            main_lines = (
                [parse([resolve(a) for a in argv[1:]], where)] if is_helixpy(argv[0]) else []
            )
            probes: dict[str, Parsed | dict[str, Any]] = {}
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = spec.get(kind)
                if probe is None:
                    continue
                if "exec" in probe:
                    command = [str(c) for c in probe["exec"]["command"]]
                    assert is_helixpy(command[0]), f"{where} {kind}: {command}"
                    probes[kind] = parse(command[1:], f"{where} {kind}")
                else:
                    probes[kind] = probe
            out.append(
                Container(doc["metadata"]["name"], pod, spec, env, sources, main_lines, probes)
            )
    return out
