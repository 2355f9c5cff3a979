"""The pod policies every workload in the chart must meet, as a checker that lists problems."""

from __future__ import annotations

from typing import Any

USER_ID = 10001
Doc = dict[str, Any]


def _effective(pod: Doc, container: Doc, key: str) -> Any:
    """A container's security setting, falling back to the pod's, as Kubernetes does."""
    value = container.get("securityContext", {}).get(key)
    return value if value is not None else pod.get("securityContext", {}).get(key)


def _container_problems(pod: Doc, container: Doc) -> list[str]:
    security = container.get("securityContext", {})
    problems = []
    if _effective(pod, container, "runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if _effective(pod, container, "runAsUser") != USER_ID:
        problems.append(f"runAsUser is not {USER_ID}")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is writable")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append("privilege escalation is not disabled")
    if "ALL" not in security.get("capabilities", {}).get("drop", []):
        problems.append("capabilities are not all dropped")
    if (_effective(pod, container, "seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("seccomp profile is not RuntimeDefault")
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        missing = {"cpu", "memory"} - set(resources.get(bound, {}))
        if missing:
            problems.append(f"no {bound} for {', '.join(sorted(missing))}")
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    if not any(
        m["mountPath"] == "/tmp" and m["name"] in empty_dirs for m in container.get("volumeMounts", [])
    ):
        problems.append("no emptyDir mounted on /tmp")
    return problems


def _probe_problems(container: Doc) -> list[str]:
    ports = {p.get("name") for p in container.get("ports", [])} | {
        p["containerPort"] for p in container.get("ports", [])
    }
    problems = []
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = container.get(probe, {}).get("httpGet")
        if not http or http.get("path") != path:
            problems.append(f"{probe} is not an HTTP GET on {path}")
        elif http.get("port") not in ports:
            problems.append(f"{probe} port {http.get('port')} is not a container port")
    return problems


def workload_problems(doc: Doc) -> list[str]:
    """Problems of one Deployment or Job; a Deployment's containers also need both probes."""
    pod = doc["spec"]["template"]["spec"]
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    problems = []
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod runAsNonRoot is not true")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: service account token is mounted")
    for container in pod.get("initContainers", []) + pod["containers"]:
        found = _container_problems(pod, container)
        if doc["kind"] == "Deployment" and container in pod["containers"]:
            found += _probe_problems(container)
        problems += [f"{where} container {container['name']}: {p}" for p in found]
    return problems
