#!/usr/bin/env python3
"""Semantic checks of gyre's deployment files that schema validation cannot see.

    checks.py manifests RENDERED.yaml     rendered kustomize output (kubectl kustomize DIR)
    checks.py compose ROOT                docker-compose.yml and the files it references
    checks.py dockerfile ROOT CARGO_CMD   Dockerfile: build command, copied files, runtime stage
    checks.py gyre-inputs RENDERED.yaml OUTDIR
                                          writes the gyre Deployment's config.json and its Secret
                                          environment (NAME=value lines, secrets.env) to OUTDIR;
                                          prints nothing and exits 3 when there is no gyre Deployment

Prints one line per check, "PASS <name>" or "FAIL <name>: <why>" (a check that has nothing to
look at in this input prints nothing), and exits 1 if any check failed. tests/deploy/validate.sh
counts the lines.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import yaml

Obj = Dict[str, Any]
FAILED = False


def report(name: str, problems: Optional[List[str]]) -> None:
    """problems None: not applicable (prints nothing); [] passes; otherwise fails."""
    global FAILED
    if problems is None:
        return
    if problems:
        FAILED = True
        print(f"FAIL {name}: " + "; ".join(problems))
    else:
        print(f"PASS {name}")


def run_checks(prefix: str, checks: Iterable[Tuple[str, Callable[[], Optional[List[str]]]]]) -> None:
    for name, fn in checks:
        try:
            problems = fn()
        except Exception as e:  # a crash in a check is a failure of that check
            problems = [f"check crashed: {type(e).__name__}: {e}"]
        report(f"{prefix}{name}", problems)


# ------------------------------------------------------------------------------- durations


def go_duration_seconds(text: str) -> float:
    """Go time.ParseDuration subset: 30s, 1m30s, 1.5h, 500ms."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = text.strip()
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


# ------------------------------------------------------------------------------- manifests

SECRET_KEYS = {"hmac_secret_key", "hmac_previous_secret_key", "key", "api_key", "token_hmac_secret_key"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


def labels_match(selector: Optional[Obj], labels: Obj) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) against labels."""
    if not selector:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class Manifests:
    def __init__(self, docs: List[Obj]):
        self.docs = [d for d in docs if isinstance(d, dict)]

    def kind(self, kind: str) -> List[Obj]:
        return [d for d in self.docs if d.get("kind") == kind]

    def find(self, kind: str, name: str) -> Optional[Obj]:
        for d in self.kind(kind):
            if d["metadata"]["name"] == name:
                return d
        return None

    def workloads(self) -> List[Obj]:
        return [d for d in self.docs if d.get("kind") in WORKLOAD_KINDS]

    @staticmethod
    def pod(workload: Obj) -> Obj:
        return workload["spec"]["template"]

    @staticmethod
    def pod_labels(workload: Obj) -> Obj:
        return workload["spec"]["template"]["metadata"].get("labels") or {}

    @staticmethod
    def containers(workload: Obj, init: bool = True) -> List[Obj]:
        spec = workload["spec"]["template"]["spec"]
        return list(spec.get("containers") or []) + (list(spec.get("initContainers") or []) if init else [])

    def pods_selected(self, selector: Optional[Obj]) -> List[Obj]:
        return [w for w in self.workloads() if labels_match(selector, self.pod_labels(w))]

    def service_pods(self, svc: Obj) -> List[Obj]:
        sel = svc["spec"].get("selector")
        return self.pods_selected({"matchLabels": sel}) if sel else []


def container_port_names(workload: Obj) -> Dict[str, int]:
    return {
        p["name"]: p["containerPort"]
        for c in Manifests.containers(workload, init=False)
        for p in c.get("ports") or []
        if "name" in p
    }


def container_port_numbers(workload: Obj) -> set:
    return {p["containerPort"] for c in Manifests.containers(workload, init=False) for p in c.get("ports") or []}


def wname(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def prestop_seconds(container: Obj) -> float:
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return float(pre["sleep"]["seconds"])
    cmd = (pre.get("exec") or {}).get("command") or []
    text = " ".join(cmd)
    m = re.search(r"\bsleep\s+([0-9.]+)", text)
    return float(m.group(1)) if m else 0.0


def gyre_config_of(m: Manifests, workload: Obj) -> Optional[Tuple[str, Obj]]:
    """The config.json from the ConfigMap a gyre pod mounts (name, parsed), if any."""
    for vol in Manifests.pod(workload)["spec"].get("volumes") or []:
        cm_name = (vol.get("configMap") or {}).get("name")
        if not cm_name:
            continue
        cm = m.find("ConfigMap", cm_name)
        if cm and "config.json" in (cm.get("data") or {}):
            return cm_name, json.loads(cm["data"]["config.json"])
    return None


def is_gyre(workload: Obj) -> bool:
    return any("gyre" in c.get("image", "").split("/")[-1].split(":")[0] for c in Manifests.containers(workload))


def check_manifests(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        m = Manifests(list(yaml.safe_load_all(f)))
    label = os.path.basename(path).rsplit(".", 1)[0] + ": "
    gyre = [w for w in m.workloads() if is_gyre(w)]

    def selectors() -> Optional[List[str]]:
        if not m.workloads():
            return None
        probs = []
        for w in m.workloads():
            sel = w["spec"].get("selector")
            if not labels_match(sel, m.pod_labels(w)):
                probs.append(f"{wname(w)}: selector {sel} does not match its pod labels")
            for tsc in Manifests.pod(w)["spec"].get("topologySpreadConstraints") or []:
                if not labels_match(tsc.get("labelSelector"), m.pod_labels(w)):
                    probs.append(f"{wname(w)}: topologySpreadConstraint selector misses its own pods")
            aff = (Manifests.pod(w)["spec"].get("affinity") or {}).get("podAntiAffinity") or {}
            terms = [t.get("podAffinityTerm", t) for t in aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
            terms += aff.get("requiredDuringSchedulingIgnoredDuringExecution") or []
            for t in terms:
                if not labels_match(t.get("labelSelector"), m.pod_labels(w)):
                    probs.append(f"{wname(w)}: podAntiAffinity selector misses its own pods")
        return probs

    def services() -> Optional[List[str]]:
        if not m.kind("Service"):
            return None
        probs = []
        for svc in m.kind("Service"):
            pods = m.service_pods(svc)
            if not pods:
                probs.append(f"Service/{svc['metadata']['name']}: selector matches no pod template")
                continue
            for port in svc["spec"].get("ports") or []:
                target = port.get("targetPort", port["port"])
                for w in pods:
                    if isinstance(target, str) and target not in container_port_names(w):
                        probs.append(f"Service/{svc['metadata']['name']}: targetPort {target!r} is not a port of {wname(w)}")
                    if isinstance(target, int) and target not in container_port_numbers(w):
                        probs.append(f"Service/{svc['metadata']['name']}: targetPort {target} is not a port of {wname(w)}")
        return probs

    def probes() -> Optional[List[str]]:
        if not m.workloads():
            return None
        probs = []
        for w in m.workloads():
            names = container_port_names(w)
            for c in Manifests.containers(w, init=False):
                for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                    pr = c.get(kind)
                    if not pr:
                        if kind != "startupProbe":
                            probs.append(f"{wname(w)}/{c['name']}: no {kind}")
                        continue
                    handler = pr.get("httpGet") or pr.get("tcpSocket") or pr.get("grpc")
                    port = (handler or {}).get("port")
                    if isinstance(port, str) and port not in names:
                        probs.append(f"{wname(w)}/{c['name']}: {kind} uses unknown port name {port!r}")
        return probs

    def gyre_probes() -> Optional[List[str]]:
        if not gyre:
            return None
        probs = []
        for w in gyre:
            names = container_port_names(w)
            c = Manifests.containers(w, init=False)[0]
            for kind in ("readinessProbe", "livenessProbe"):
                get = (c.get(kind) or {}).get("httpGet") or {}
                port = get.get("port")
                number = names.get(port, port)
                if get.get("path") != "/health" or number != 9000:
                    probs.append(f"{wname(w)}: {kind} must be GET /health on the internal port 9000")
        return probs

    def grace() -> Optional[List[str]]:
        if not gyre:
            return None
        probs = []
        for w in gyre:
            found = gyre_config_of(m, w)
            if not found:
                probs.append(f"{wname(w)}: mounts no ConfigMap with config.json")
                continue
            timeout = go_duration_seconds(str((found[1].get("shutdown") or {}).get("timeout", "30s")))
            pre = max(prestop_seconds(c) for c in Manifests.containers(w, init=False))
            tgp = Manifests.pod(w)["spec"].get("terminationGracePeriodSeconds", 30)
            if pre <= 0:
                probs.append(f"{wname(w)}: no preStop pause (sleep) before SIGTERM")
            if not tgp > pre + timeout:
                probs.append(
                    f"{wname(w)}: terminationGracePeriodSeconds {tgp} must exceed preStop {pre:g}s + shutdown.timeout {timeout:g}s"
                )
        return probs

    def images() -> Optional[List[str]]:
        if not m.workloads():
            return None
        probs = []
        for w in m.workloads():
            for c in Manifests.containers(w):
                image = c.get("image", "")
                last = image.split("/")[-1]
                if "@sha256:" in image:
                    continue
                if ":" not in last:
                    probs.append(f"{wname(w)}/{c['name']}: image {image!r} has no tag")
                elif last.endswith(":latest"):
                    probs.append(f"{wname(w)}/{c['name']}: image {image!r} uses :latest")
        return probs

    def resources() -> Optional[List[str]]:
        if not m.workloads():
            return None
        probs = []
        for w in m.workloads():
            for c in Manifests.containers(w):
                r = c.get("resources") or {}
                for section, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
                    if key not in (r.get(section) or {}):
                        probs.append(f"{wname(w)}/{c['name']}: resources.{section}.{key} not set")
        return probs

    def security() -> Optional[List[str]]:
        if not m.workloads():
            return None
        probs = []
        for w in m.workloads():
            spec = Manifests.pod(w)["spec"]
            psc = spec.get("securityContext") or {}
            if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
                probs.append(f"{wname(w)}: uses host namespaces")
            if spec.get("automountServiceAccountToken") is not False:
                probs.append(f"{wname(w)}: automountServiceAccountToken is not false")
            for c in Manifests.containers(w):
                csc = c.get("securityContext") or {}
                where = f"{wname(w)}/{c['name']}"
                if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                    probs.append(f"{where}: runAsNonRoot not true")
                if csc.get("runAsUser", psc.get("runAsUser")) in (0, None):
                    probs.append(f"{where}: runAsUser must be a non-zero uid")
                if csc.get("allowPrivilegeEscalation") is not False:
                    probs.append(f"{where}: allowPrivilegeEscalation not false")
                if csc.get("readOnlyRootFilesystem") is not True:
                    probs.append(f"{where}: readOnlyRootFilesystem not true")
                if csc.get("privileged"):
                    probs.append(f"{where}: privileged")
                if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                    probs.append(f"{where}: capabilities.drop does not contain ALL")
                seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    probs.append(f"{where}: no RuntimeDefault seccompProfile")
        return probs

    def references() -> Optional[List[str]]:
        if not m.workloads():
            return None
        probs = []
        for w in m.workloads():
            spec = Manifests.pod(w)["spec"]
            for vol in spec.get("volumes") or []:
                if "configMap" in vol and not m.find("ConfigMap", vol["configMap"]["name"]):
                    probs.append(f"{wname(w)}: volume {vol['name']} refers to missing ConfigMap {vol['configMap']['name']}")
                if "secret" in vol and not m.find("Secret", vol["secret"]["secretName"]):
                    probs.append(f"{wname(w)}: volume {vol['name']} refers to missing Secret {vol['secret']['secretName']}")
            mounts_ok = {v["name"] for v in spec.get("volumes") or []} | {
                t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates") or []
            }
            for c in Manifests.containers(w):
                for vm in c.get("volumeMounts") or []:
                    if vm["name"] not in mounts_ok:
                        probs.append(f"{wname(w)}/{c['name']}: volumeMount {vm['name']} has no volume")
                for env in c.get("env") or []:
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        sec = m.find("Secret", ref["name"])
                        keys = set((sec or {}).get("data") or {}) | set((sec or {}).get("stringData") or {})
                        if not sec:
                            probs.append(f"{wname(w)}: env {env['name']} refers to missing Secret {ref['name']}")
                        elif ref["key"] not in keys:
                            probs.append(f"{wname(w)}: env {env['name']}: Secret {ref['name']} has no key {ref['key']}")
                    ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                    if ref:
                        cm = m.find("ConfigMap", ref["name"])
                        if not cm or ref["key"] not in (cm.get("data") or {}):
                            probs.append(f"{wname(w)}: env {env['name']} refers to missing ConfigMap key {ref}")
                for src in c.get("envFrom") or []:
                    if "secretRef" in src and not m.find("Secret", src["secretRef"]["name"]):
                        probs.append(f"{wname(w)}: envFrom refers to missing Secret {src['secretRef']['name']}")
                    if "configMapRef" in src and not m.find("ConfigMap", src["configMapRef"]["name"]):
                        probs.append(f"{wname(w)}: envFrom refers to missing ConfigMap {src['configMapRef']['name']}")
            sa = spec.get("serviceAccountName")
            if sa and not m.find("ServiceAccount", sa):
                probs.append(f"{wname(w)}: serviceAccountName {sa} not defined")
            if w["kind"] == "StatefulSet":
                svc = m.find("Service", w["spec"].get("serviceName", ""))
                if not svc or svc["spec"].get("clusterIP") != "None":
                    probs.append(f"{wname(w)}: serviceName must name a headless Service")
        return probs

    def gyre_config() -> Optional[List[str]]:
        if not gyre:
            return None
        probs = []
        for w in gyre:
            found = gyre_config_of(m, w)
            if not found:
                probs.append(f"{wname(w)}: mounts no ConfigMap with config.json")
                continue
            cm_name, cfg = found
            names = container_port_names(w)
            server = cfg.get("http_server") or {}
            if int(server.get("port", 8000)) != names.get("client"):
                probs.append(f"{cm_name}: http_server.port differs from the container port 'client'")
            if str(server.get("internal_port", "")) != str(names.get("internal")):
                probs.append(f"{cm_name}: http_server.internal_port differs from the container port 'internal'")
            for section in ("health", "prometheus"):
                if (cfg.get(section) or {}).get("enabled") is not True:
                    probs.append(f"{cm_name}: {section}.enabled must be true")
            if (cfg.get("http_api") or {}).get("external") or (cfg.get("http_api") or {}).get("insecure"):
                probs.append(f"{cm_name}: http_api.external/insecure expose the API")
            # NATS URLs must name a Service (and port) of this render.
            for section in ("broker", "presence_manager"):
                sec = cfg.get(section) or {}
                if sec.get("enabled") and sec.get("type") == "nats":
                    url = (sec.get("nats") or {}).get("url", "")
                    mt = re.fullmatch(r"nats://([^:/]+):(\d+)", url)
                    svc = m.find("Service", mt.group(1).split(".")[0]) if mt else None
                    if not svc or int(mt.group(2)) not in [p["port"] for p in svc["spec"]["ports"]]:
                        probs.append(f"{cm_name}: {section}.nats.url {url!r} names no Service:port in this render")
        return probs

    def no_secrets_in_configmaps() -> Optional[List[str]]:
        if not m.kind("ConfigMap"):
            return None
        probs = []

        def walk(node: Any, path: str, cm: str) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if k in SECRET_KEYS and isinstance(v, str) and v:
                        probs.append(f"ConfigMap/{cm}: {path}{k} holds a secret (use the Secret)")
                    walk(v, f"{path}{k}.", cm)
            elif isinstance(node, list):
                for item in node:
                    walk(item, path, cm)

        for cm in m.kind("ConfigMap"):
            for key, text in (cm.get("data") or {}).items():
                if key.endswith(".json"):
                    walk(json.loads(text), "", cm["metadata"]["name"])
                if re.search(r"(?i)(secret|password|api_key)\s*[:=]\s*\S", text) and not key.endswith(".json"):
                    probs.append(f"ConfigMap/{cm['metadata']['name']}: {key} looks like it holds a secret")
        return probs

    def hpa() -> Optional[List[str]]:
        deployments = [d for d in m.kind("Deployment") if is_gyre(d)]
        if not deployments and not m.kind("HorizontalPodAutoscaler"):
            return None
        probs = []
        for d in deployments:
            hpas = [
                h
                for h in m.kind("HorizontalPodAutoscaler")
                if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
                and h["spec"]["scaleTargetRef"].get("name") == d["metadata"]["name"]
            ]
            if len(hpas) != 1:
                probs.append(f"{wname(d)}: expected exactly one HorizontalPodAutoscaler targeting it, found {len(hpas)}")
        for h in m.kind("HorizontalPodAutoscaler"):
            ref = h["spec"]["scaleTargetRef"]
            target = m.find(ref.get("kind", ""), ref.get("name", ""))
            where = f"HorizontalPodAutoscaler/{h['metadata']['name']}"
            if not target:
                probs.append(f"{where}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not in the render")
                continue
            lo, hi = h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"]
            if lo < 2:
                probs.append(f"{where}: minReplicas {lo} < 2")
            if hi < lo:
                probs.append(f"{where}: maxReplicas < minReplicas")
            replicas = target["spec"].get("replicas")
            if replicas is not None and not lo <= replicas <= hi:
                probs.append(f"{where}: {wname(target)} replicas {replicas} outside {lo}..{hi}")
            if not any((mt.get("resource") or {}).get("name") == "cpu" for mt in h["spec"].get("metrics") or []):
                probs.append(f"{where}: no CPU metric")
            down = (h["spec"].get("behavior") or {}).get("scaleDown") or {}
            if down.get("stabilizationWindowSeconds", 300) < 300 or "stabilizationWindowSeconds" not in down:
                probs.append(f"{where}: behavior.scaleDown.stabilizationWindowSeconds must be set and >= 300")
        return probs

    def pdb() -> Optional[List[str]]:
        multi = [w for w in m.workloads() if (w["spec"].get("replicas") or 1) > 1]
        if not multi:
            return None
        probs = []
        for w in multi:
            budgets = [p for p in m.kind("PodDisruptionBudget") if labels_match(p["spec"].get("selector"), m.pod_labels(w))]
            if len(budgets) != 1:
                probs.append(f"{wname(w)}: expected one PodDisruptionBudget selecting its pods, found {len(budgets)}")
                continue
            spec = budgets[0]["spec"]
            replicas = w["spec"].get("replicas") or 1
            floor = replicas
            for h in m.kind("HorizontalPodAutoscaler"):
                if h["spec"]["scaleTargetRef"].get("name") == w["metadata"]["name"]:
                    floor = min(floor, h["spec"].get("minReplicas", 1))
            if floor < 2:
                probs.append(f"{wname(w)}: has a PodDisruptionBudget but may run fewer than 2 replicas")
            if "minAvailable" in spec and isinstance(spec["minAvailable"], int) and spec["minAvailable"] >= floor:
                probs.append(f"{wname(w)}: minAvailable {spec['minAvailable']} leaves no disruption allowed at {floor} replicas")
            if spec.get("maxUnavailable") in (0, "0%"):
                probs.append(f"{wname(w)}: maxUnavailable 0 blocks node drains")
        for p in m.kind("PodDisruptionBudget"):
            if not m.pods_selected(p["spec"].get("selector")):
                probs.append(f"PodDisruptionBudget/{p['metadata']['name']}: selects no pods")
        return probs

    def network_policies() -> Optional[List[str]]:
        if not gyre:
            return None
        probs = []
        policies = m.kind("NetworkPolicy")
        for w in gyre:
            mine = [p for p in policies if labels_match(p["spec"].get("podSelector"), m.pod_labels(w))]
            if not mine:
                probs.append(f"{wname(w)}: no NetworkPolicy selects its pods")
                continue
            names = container_port_names(w)
            for p in mine:
                for rule in p["spec"].get("ingress") or []:
                    ports = [names.get(pt.get("port"), pt.get("port")) for pt in rule.get("ports") or []]
                    for pt in rule.get("ports") or []:
                        if isinstance(pt.get("port"), str) and pt["port"] not in names:
                            probs.append(f"NetworkPolicy/{p['metadata']['name']}: unknown port name {pt['port']!r}")
                    if not rule.get("from") and (not ports or names.get("internal") in ports):
                        probs.append(
                            f"NetworkPolicy/{p['metadata']['name']}: the internal port is open to every source"
                        )
        for p in policies:
            if not m.pods_selected(p["spec"].get("podSelector")):
                probs.append(f"NetworkPolicy/{p['metadata']['name']}: selects no pods")
        return probs

    def internal_not_public() -> Optional[List[str]]:
        if not gyre:
            return None
        probs = []
        internal = {container_port_names(w).get("internal") for w in gyre}
        for svc in m.kind("Service"):
            exposes = [
                p for p in svc["spec"].get("ports") or []
                if p.get("targetPort") == "internal" or p.get("targetPort") in internal
            ]
            if exposes and svc["spec"].get("type", "ClusterIP") not in ("ClusterIP",):
                probs.append(f"Service/{svc['metadata']['name']}: internal port on a {svc['spec']['type']} Service")
        for ing in m.kind("Ingress"):
            for rule in ing["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    port = path["backend"]["service"]["port"]
                    if port.get("name") == "internal" or port.get("number") == 9000:
                        probs.append(f"Ingress/{ing['metadata']['name']}: routes the internal port publicly")
        return probs

    def ingress() -> Optional[List[str]]:
        if not m.kind("Ingress"):
            return None
        probs = []
        for ing in m.kind("Ingress"):
            where = f"Ingress/{ing['metadata']['name']}"
            ann = ing["metadata"].get("annotations") or {}
            for key in ("nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"):
                if int(ann.get(key, "0")) < 3600:
                    probs.append(f"{where}: {key} must be >= 3600 for WebSockets")
            for rule in ing["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    backend = path["backend"]["service"]
                    svc = m.find("Service", backend["name"])
                    if not svc:
                        probs.append(f"{where}: backend Service {backend['name']} is not in the render")
                        continue
                    port = backend["port"]
                    ports = svc["spec"]["ports"]
                    if "name" in port and port["name"] not in [p.get("name") for p in ports]:
                        probs.append(f"{where}: Service {backend['name']} has no port named {port['name']}")
                    if "number" in port and port["number"] not in [p["port"] for p in ports]:
                        probs.append(f"{where}: Service {backend['name']} has no port {port['number']}")
        return probs

    def service_monitors() -> Optional[List[str]]:
        if not m.kind("ServiceMonitor"):
            return None
        probs = []
        for sm in m.kind("ServiceMonitor"):
            where = f"ServiceMonitor/{sm['metadata']['name']}"
            svcs = [s for s in m.kind("Service") if labels_match(sm["spec"].get("selector"), s["metadata"].get("labels") or {})]
            if not svcs:
                probs.append(f"{where}: selector matches no Service")
            for ep in sm["spec"].get("endpoints") or []:
                for s in svcs:
                    if ep.get("port") not in [p.get("name") for p in s["spec"]["ports"]]:
                        probs.append(f"{where}: Service {s['metadata']['name']} has no port named {ep.get('port')}")
                if ep.get("path", "/metrics") != "/metrics":
                    probs.append(f"{where}: path should be /metrics")
        return probs

    def namespaces() -> Optional[List[str]]:
        ns_objs = {n["metadata"]["name"] for n in m.kind("Namespace")}
        if not ns_objs:
            return None
        used = {d["metadata"].get("namespace") for d in m.docs if d.get("kind") != "Namespace"}
        used.discard(None)
        return [f"objects in namespace {n} which the render does not create" for n in sorted(used - ns_objs)] + (
            [f"objects spread over namespaces {sorted(used)}"] if len(used) > 1 else []
        )

    def rollout() -> Optional[List[str]]:
        deployments = [d for d in m.kind("Deployment") if is_gyre(d)]
        if not deployments:
            return None
        probs = []
        for d in deployments:
            ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
            if d["spec"].get("strategy", {}).get("type", "RollingUpdate") != "RollingUpdate":
                probs.append(f"{wname(d)}: strategy must be RollingUpdate")
            if ru.get("maxUnavailable", "25%") not in (0, "0", "0%"):
                probs.append(f"{wname(d)}: rollingUpdate.maxUnavailable should be 0 (never fewer ready pods)")
        return probs

    run_checks(
        label,
        [
            ("workload selectors match pod labels", selectors),
            ("Service selectors and target ports", services),
            ("probe ports exist", probes),
            ("gyre probes GET /health on the internal port", gyre_probes),
            ("terminationGracePeriodSeconds > preStop + shutdown.timeout", grace),
            ("images pinned (no :latest)", images),
            ("resources set", resources),
            ("hardened securityContext", security),
            ("ConfigMap/Secret/volume/ServiceAccount references resolve", references),
            ("gyre config matches ports, health, metrics, NATS Service", gyre_config),
            ("no secrets in ConfigMaps", no_secrets_in_configmaps),
            ("HPA targets the Deployment; CPU; slow scale-down", hpa),
            ("PodDisruptionBudget per multi-replica workload, >= 2 replicas", pdb),
            ("NetworkPolicy keeps the internal port internal", network_policies),
            ("internal port never on a public Service or Ingress", internal_not_public),
            ("Ingress backends and WebSocket timeouts", ingress),
            ("ServiceMonitor selects the internal Service", service_monitors),
            ("single namespace, created by the render", namespaces),
            ("rolling update keeps every ready pod", rollout),
        ],
    )


# ------------------------------------------------------------------------------- compose


def check_compose(root: str) -> None:
    path = os.path.join(root, "docker-compose.yml")
    state: Dict[str, Any] = {}

    def parses() -> List[str]:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
            return ["no services mapping"]
        state["doc"] = doc
        return []

    def services() -> Optional[List[str]]:
        doc = state.get("doc")
        if doc is None:
            return ["docker-compose.yml did not parse"]
        svcs = doc["services"]
        gyre = {n: s for n, s in svcs.items() if "build" in s or str(s.get("image", "")).startswith("gyre")}
        state["gyre"] = gyre
        probs = []
        if len(gyre) < 3:
            probs.append(f"expected 3 gyre nodes, found {len(gyre)}")
        nats = svcs.get("nats")
        if not nats:
            probs.append("no nats service")
        else:
            image = str(nats.get("image", ""))
            if not image.startswith("nats:") or image.endswith(":latest"):
                probs.append(f"nats image {image!r} should be a pinned nats: tag")
            cmd = nats.get("command") or []
            cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
            if not ({"-js", "--jetstream"} & set(cmd)):
                probs.append("nats runs without JetStream (-js)")
        for name, s in gyre.items():
            deps = s.get("depends_on") or {}
            if "nats" not in deps:
                probs.append(f"{name}: does not depend on nats")
        return probs

    def referenced_files() -> Optional[List[str]]:
        doc = state.get("doc")
        if doc is None:
            return ["docker-compose.yml did not parse"]
        probs = []
        named = set((doc.get("volumes") or {}).keys())
        for name, s in doc["services"].items():
            build = s.get("build")
            if build is not None:
                ctx = build if isinstance(build, str) else build.get("context", ".")
                dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
                if not os.path.isdir(os.path.join(root, ctx)):
                    probs.append(f"{name}: build context {ctx} missing")
                elif not os.path.isfile(os.path.join(root, ctx, dockerfile)):
                    probs.append(f"{name}: {dockerfile} missing")
            for vol in s.get("volumes") or []:
                src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
                if src in named:
                    continue
                if src.startswith((".", "/")):
                    if not os.path.exists(os.path.join(root, src)):
                        probs.append(f"{name}: mounted file {src} does not exist")
                elif src:
                    probs.append(f"{name}: volume {src} is not declared under volumes:")
            for env_file in [s["env_file"]] if isinstance(s.get("env_file"), str) else s.get("env_file") or []:
                env_file = env_file if isinstance(env_file, str) else env_file.get("path")
                if not os.path.isfile(os.path.join(root, env_file)):
                    probs.append(f"{name}: env_file {env_file} does not exist")
        return probs

    def ports() -> Optional[List[str]]:
        gyre = state.get("gyre")
        if gyre is None:
            return ["no gyre services"]
        probs, seen, clients = [], set(), []
        for name, s in state["doc"]["services"].items():
            for p in s.get("ports") or []:
                parts = str(p).split(":")
                host = ":".join(parts[:-1])
                if host in seen:
                    probs.append(f"{name}: host port {host} published twice")
                seen.add(host)
                if name in gyre:
                    container = parts[-1]
                    if container == "8000":
                        clients.append(int(parts[-2]))
                    elif container == "9000" and not host.startswith("127.0.0.1:"):
                        probs.append(f"{name}: internal port 9000 published beyond loopback ({p})")
        if sorted(clients) != [8001, 8002, 8003]:
            probs.append(f"client ports should be 8001-8003, found {sorted(clients)}")
        return probs

    def node_config() -> Optional[List[str]]:
        gyre = state.get("gyre")
        if gyre is None:
            return ["no gyre services"]
        probs, configs = [], set()
        for name, s in gyre.items():
            mounts = [v for v in s.get("volumes") or [] if isinstance(v, str) and ":/etc/gyre/config.json" in v]
            cmd = s.get("command") or []
            if mounts:
                configs.add(mounts[0].split(":")[0])
            else:
                probs.append(f"{name}: no config file mounted at /etc/gyre/config.json")
            if " ".join(cmd) != "serve --config /etc/gyre/config.json":
                probs.append(f"{name}: command should be serve --config /etc/gyre/config.json")
            env = s.get("environment") or {}
            env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
            for key in ("GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY", "GYRE_HTTP_API__KEY"):
                if not env.get(key):
                    probs.append(f"{name}: {key} not set")
            grace = go_duration_seconds(str(s.get("stop_grace_period", "10s")))
            state["grace"] = grace
        if len(configs) != 1:
            probs.append(f"nodes should share one config file, found {sorted(configs)}")
            return probs
        rel = configs.pop()
        if not rel.startswith("./config/"):
            probs.append(f"the shared config {rel} should live under config/")
        cfg_path = os.path.join(root, rel)
        state["config_path"] = cfg_path
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        for section in ("broker", "presence_manager"):
            sec = cfg.get(section) or {}
            url = (sec.get("nats") or {}).get("url", "")
            if not (sec.get("enabled") and sec.get("type") == "nats"):
                probs.append(f"{rel}: {section} is not an enabled nats {section}")
            mt = re.fullmatch(r"nats://([^:/]+):4222", url)
            if not mt or mt.group(1) not in state["doc"]["services"]:
                probs.append(f"{rel}: {section}.nats.url {url!r} does not name the compose nats service")
        if str((cfg.get("http_server") or {}).get("internal_port")) != "9000":
            probs.append(f"{rel}: http_server.internal_port should be \"9000\"")
        for section in ("health", "prometheus"):
            if (cfg.get(section) or {}).get("enabled") is not True:
                probs.append(f"{rel}: {section}.enabled should be true")
        walk_secrets = json.dumps(cfg)
        if re.search(r'"(hmac_secret_key|key)":\s*"[^"]+"', walk_secrets):
            probs.append(f"{rel}: holds a secret; pass secrets through the environment")
        timeout = go_duration_seconds(str((cfg.get("shutdown") or {}).get("timeout", "30s")))
        if not state.get("grace", 0) > timeout:
            probs.append(f"stop_grace_period {state.get('grace')}s should exceed shutdown.timeout {timeout:g}s")
        return probs

    run_checks(
        "compose: ",
        [
            ("docker-compose.yml parses", parses),
            ("NATS with JetStream and three gyre nodes", services),
            ("every referenced file exists", referenced_files),
            ("distinct host ports, internal ports loopback only", ports),
            ("shared config under config/ with NATS, health, metrics; secrets from env", node_config),
        ],
    )


# ------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: List[Tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def check_dockerfile(root: str, cargo_cmd: str) -> None:
    with open(os.path.join(root, "Dockerfile"), encoding="utf-8") as f:
        instructions = dockerfile_instructions(f.read())
    stages: List[Tuple[str, List[Tuple[str, str]]]] = []
    for ins, args in instructions:
        if ins == "FROM":
            words = args.split()
            name = words[words.index("AS") + 1] if "AS" in words else words[-1]
            stages.append((name, []))
            stages[-1][1].append((ins, args))
        elif stages:
            stages[-1][1].append((ins, args))

    def multi_stage() -> List[str]:
        probs = []
        if len(stages) < 2:
            probs.append("expected a build stage and a runtime stage")
        for _, body in stages:
            image = body[0][1].split()[0]
            if image.endswith(":latest") or ":" not in image:
                probs.append(f"base image {image} is not pinned")
        return probs

    def build_command() -> List[str]:
        cargo = []
        for name, body in stages[:-1]:
            for ins, args in body:
                if ins == "RUN":
                    cmd = re.sub(r"--mount=\S+\s*", "", args)
                    for part in re.split(r"&&|;", cmd):
                        if part.strip().startswith("cargo "):
                            cargo.append(" ".join(part.split()))
        if cargo != [cargo_cmd]:
            return [f"build stage cargo commands {cargo} != [{cargo_cmd!r}] (the command CI runs)"]
        return []

    def runtime() -> List[str]:
        probs = []
        body = dict((ins, args) for ins, args in stages[-1][1]) if stages else {}
        user = body.get("USER", "")
        uid = user.split(":")[0]
        if not uid.isdigit() or uid == "0":
            probs.append(f"runtime USER {user!r} should be a numeric non-root uid")
        if "HEALTHCHECK" not in body:
            probs.append("no HEALTHCHECK")
        elif "/health" not in body["HEALTHCHECK"]:
            probs.append("HEALTHCHECK does not probe /health")
        entry = json.loads(body.get("ENTRYPOINT", "[]") or "[]") + json.loads(body.get("CMD", "[]") or "[]")
        if not (entry and entry[0].endswith("gyre") and entry[1:] == ["serve", "--config", "/etc/gyre/config.json"]):
            probs.append(f"ENTRYPOINT+CMD {entry} should run gyre serve --config /etc/gyre/config.json")
        exposed = set(body.get("EXPOSE", "").split())
        if not {"8000", "9000"} <= exposed:
            probs.append("EXPOSE should list 8000 and 9000")
        return probs

    def copied_files() -> List[str]:
        probs = []
        ignored = []
        ignore_path = os.path.join(root, ".dockerignore")
        if os.path.isfile(ignore_path):
            with open(ignore_path, encoding="utf-8") as f:
                ignored = [l.strip().rstrip("/") for l in f if l.strip() and not l.startswith("#") and not l.startswith("!")]
        stage_names = {n for n, _ in stages}
        for _, body in stages:
            for ins, args in body:
                if ins not in ("COPY", "ADD"):
                    continue
                words = [w for w in args.split() if not w.startswith("--")]
                if any(w.startswith("--from=") for w in args.split()):
                    src = [w for w in args.split() if w.startswith("--from=")][0].split("=", 1)[1]
                    if src not in stage_names:
                        probs.append(f"COPY --from={src}: no such stage")
                    continue
                for source in words[:-1]:
                    if not os.path.exists(os.path.join(root, source)):
                        probs.append(f"{ins} {source}: missing in the build context")
                    top = source.strip("./").split("/")[0]
                    if top in ignored or source.strip("./") in ignored:
                        probs.append(f"{ins} {source}: excluded by .dockerignore")
        return probs

    def cargo_targets() -> List[str]:
        """Targets declared in Cargo.toml must be copied into the build stage, or cargo refuses
        the manifest."""
        import tomllib

        with open(os.path.join(root, "Cargo.toml"), "rb") as f:
            manifest = tomllib.load(f)
        copied = set()
        for _, body in stages[:-1]:
            for ins, args in body:
                if ins in ("COPY", "ADD") and "--from=" not in args:
                    words = [w for w in args.split() if not w.startswith("--")]
                    copied.update(w.strip("./").rstrip("/") for w in words[:-1])
        default_dirs = {"bench": "benches", "test": "tests", "example": "examples", "bin": "src/bin"}
        probs = []
        for kind, folder in default_dirs.items():
            for target in manifest.get(kind) or []:
                path = target.get("path") or f"{folder}/{target['name']}.rs"
                if not any(path == c or path.startswith(c + "/") for c in copied):
                    probs.append(f"Cargo.toml [[{kind}]] {target['name']} ({path}) is not copied into the build stage")
        lib = (manifest.get("lib") or {}).get("path", "src/lib.rs")
        if not any(lib == c or lib.startswith(c + "/") for c in copied):
            probs.append(f"the library ({lib}) is not copied into the build stage")
        return probs

    run_checks(
        "Dockerfile: ",
        [
            ("multi-stage with pinned base images", multi_stage),
            ("every Cargo.toml target is copied into the build stage", cargo_targets),
            (f"build stage runs exactly `{cargo_cmd}`", build_command),
            ("runtime: non-root, HEALTHCHECK, gyre serve --config, ports", runtime),
            ("copied files exist and are not dockerignored", copied_files),
        ],
    )


def gyre_inputs(path: str, outdir: str) -> int:
    import base64

    with open(path, encoding="utf-8") as f:
        m = Manifests(list(yaml.safe_load_all(f)))
    gyre = [w for w in m.workloads() if is_gyre(w)]
    if not gyre:
        return 3
    w = gyre[0]
    found = gyre_config_of(m, w)
    if not found:
        raise SystemExit(f"{wname(w)} mounts no config.json")
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(found[1], f, indent=2)
    lines = []
    for c in Manifests.containers(w, init=False):
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                sec = m.find("Secret", ref["name"]) or {}
                if ref["key"] in (sec.get("data") or {}):
                    value = base64.b64decode(sec["data"][ref["key"]]).decode()
                else:
                    value = (sec.get("stringData") or {}).get(ref["key"], "")
                lines.append(f"{env['name']}={value}")
    with open(os.path.join(outdir, "secrets.env"), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return 0


def main(argv: List[str]) -> int:
    if len(argv) >= 3 and argv[1] == "manifests":
        for path in argv[2:]:
            check_manifests(path)
    elif len(argv) == 3 and argv[1] == "compose":
        check_compose(argv[2])
    elif len(argv) == 4 and argv[1] == "gyre-inputs":
        return gyre_inputs(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "dockerfile":
        check_dockerfile(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
