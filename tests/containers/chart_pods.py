"""The Helm chart's pods as container runs: each service's Deployment (and the migration Job)
rendered by helm, then started from the image with the same arguments, environment, user,
read-only root filesystem, dropped capabilities and /tmp volume.

One difference, forced by the host network the tests use: every container of a pod listens on
the chart's single httpPort, so each service gets its own free port through HAGGLE_HTTP_PORT.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.deploy.test_chart import by_kind, render

Doc = dict[str, Any]


@dataclass(frozen=True)
class Run:
    """One container of a rendered pod, as the arguments of a container run."""

    name: str
    args: list[str]
    env: dict[str, str]
    user: str
    read_only: bool
    cap_drop: list[str]
    security_opt: list[str]
    tmpfs: dict[str, str] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "read_only": self.read_only,
            "cap_drop": self.cap_drop,
            "security_opt": self.security_opt,
            "tmpfs": self.tmpfs,
        }


def _secret_values(docs: list[Doc]) -> dict[tuple[str, str], str]:
    found = {}
    for secret in by_kind(docs, "Secret").values():
        for key, value in (secret.get("stringData") or {}).items():
            found[(secret["metadata"]["name"], key)] = value
        for key, value in (secret.get("data") or {}).items():
            found[(secret["metadata"]["name"], key)] = base64.b64decode(value).decode()
    return found


def _env(spec: Doc, docs: list[Doc], supplied: Mapping[str, str]) -> dict[str, str]:
    """The container's environment; a Secret the chart expects to exist already (the web app's
    keys) comes from `supplied`, by key, as an operator would create it."""
    configmaps = by_kind(docs, "ConfigMap")
    secrets = _secret_values(docs)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            found = secrets.get((ref["name"], ref["key"]))
            env[item["name"]] = found if found is not None else supplied[ref["key"]]
    return env


def _run(name: str, pod: Doc, spec: Doc, docs: list[Doc], supplied: Mapping[str, str]) -> Run:
    pod_security = pod.get("securityContext", {})
    security = {**pod_security, **spec.get("securityContext", {})}
    assert security.get("runAsNonRoot") is True, f"{name} may run as root"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmpfs = {}
    for mount in spec.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"{name} mounts {mount['name']}, not an emptyDir"
        size = volume["emptyDir"].get("sizeLimit", "")
        tmpfs[mount["mountPath"]] = f"size={size.removesuffix('i').lower()}" if size else ""
    return Run(
        name=name,
        args=list(spec.get("command", [])) + list(spec["args"]),
        env=_env(spec, docs, supplied),
        user=f"{security['runAsUser']}:{security['runAsGroup']}",
        read_only=bool(security.get("readOnlyRootFilesystem")),
        cap_drop=list(security.get("capabilities", {}).get("drop", [])),
        security_opt=[] if security.get("allowPrivilegeEscalation", True) else ["no-new-privileges"],
        tmpfs=tmpfs,
    )


def chart_runs(
    helm: str, values: dict[str, str], supplied: Mapping[str, str] | None = None
) -> tuple[list[Run], dict[str, Run]]:
    """(the migration Job's containers in order, each service's container by service name)."""
    supplied = supplied or {}
    docs = render(helm, values)
    job = next(iter(by_kind(docs, "Job").values()))["spec"]["template"]["spec"]
    steps = [
        _run(c["name"], job, c, docs, supplied) for c in [*job.get("initContainers", []), *job["containers"]]
    ]
    services = {}
    for deployment in by_kind(docs, "Deployment").values():
        name = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = deployment["spec"]["template"]["spec"]
        [spec] = pod["containers"]
        services[name] = _run(name, pod, spec, docs, supplied)
    return steps, services
