"""The deployment files: Dockerfile, its entrypoint, Prometheus rules, the Grafana dashboard.

No Docker engine runs here, so the Dockerfile is checked by reading it (multi-stage, non-root,
health check on /readyz, every COPY source present and not dockerignored) and by building what
its build stage builds: a wheel from exactly the files it copies, which must carry every
piece of package data the service reads at run time. The alert rules go through
``promtool check rules`` and ``promtool test rules`` (deploy/prometheus/alerts_test.yml)
when promtool is installed (``apt-get install prometheus``); every metric name in the rules
and the dashboard must be one filterd exports.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROMTOOL = shutil.which("promtool")

# ------------------------------------------------------------------ the Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for word, args in _instructions():
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, args))
    return stages


def _copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str, bool]]:
    """(sources, destination, from another stage?) of each COPY."""
    out = []
    for word, args in stage:
        if word != "COPY":
            continue
        parts = shlex.split(args)
        from_stage = any(p.startswith("--from=") for p in parts)
        paths = [p for p in parts if not p.startswith("--")]
        out.append((paths[:-1], paths[-1], from_stage))
    return out


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_dockerfile_is_multi_stage_without_torch() -> None:
    stages = _stages()
    assert len(stages) >= 2, "a build stage and a runtime stage"
    build = " ".join(args for word, args in stages[0] if word == "RUN")
    assert "pip install ." in build  # the runtime dependencies only
    assert "[train]" not in build and "[dev]" not in build and "torch" not in build.replace(
        "import torch", "")
    assert stages[-1][0][1].startswith("python:3.11-slim")
    assert any(from_stage for _, _, from_stage in _copies(stages[-1]))  # the venv, built


def test_runtime_stage_runs_as_a_non_root_user() -> None:
    runtime = _stages()[-1]
    users = [args for word, args in runtime if word == "USER"]
    assert users, "the runtime stage must switch to a user"
    assert users[-1].split(":")[0] not in ("root", "0")
    # nothing runs as root after the switch
    after = runtime[max(i for i, (w, _) in enumerate(runtime) if w == "USER"):]
    assert not [a for w, a in after if w == "RUN"], "RUN after USER would run as that user; " \
        "keep root-only steps before it"


def test_healthcheck_probes_readiness_without_curl() -> None:
    runtime = _stages()[-1]
    checks = [args for word, args in runtime if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/readyz" in checks[0] and "python" in checks[0] and "curl" not in checks[0]
    assert any(word == "EXPOSE" and "8080" in args for word, args in runtime)


def test_health_check_command_runs() -> None:
    # The CMD of the HEALTHCHECK is valid Python: against a closed port it must fail (exit 1),
    # not crash on a syntax error (exit 1 too, so the message is checked).
    runtime = _stages()[-1]
    check = next(args for word, args in runtime if word == "HEALTHCHECK")
    argv = json.loads(check[check.index("CMD") + 3:].strip())
    assert argv[:2] == ["python", "-c"]
    r = subprocess.run([sys.executable, "-c", argv[2]], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "FILTERD_PORT": "9"})
    assert r.returncode != 0
    assert "SyntaxError" not in r.stderr and ("URLError" in r.stderr or "refused" in r.stderr)


def test_runtime_environment_points_at_what_the_image_holds() -> None:
    runtime = _stages()[-1]
    env = _env(runtime)
    assert env["FILTERD_HOST"] == "0.0.0.0"
    assert env.get("PROMETHEUS_MULTIPROC_DIR")
    model = env["FILTERD_MODEL_DIR"]
    copied = {dest.rstrip("/"): sources for sources, dest, _ in _copies(runtime)}
    assert model in copied, "FILTERD_MODEL_DIR must be where the model is copied"
    assert (REPO / copied[model][0] / "filterd_model.json").is_file()
    assert env["FILTERD_DATABASE_URL"].startswith("sqlite:////data/")
    assert any(word == "VOLUME" and "/data" in args for word, args in runtime)


def _dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
               or fnmatch.fnmatch(prefix.split("/")[-1], pattern.removeprefix("**/"))
               for pattern in patterns if not pattern.startswith("!")
               for prefix in prefixes)


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    for stage in _stages():
        for sources, _, from_stage in _copies(stage):
            if from_stage:
                continue
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not _dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    assert _dockerignored("tests/test_deploy.py") and _dockerignored(".git")  # the check works


def test_entrypoint_empties_the_metrics_folder_then_runs_the_command(tmp_path: Path) -> None:
    script = DEPLOY / "docker-entrypoint.sh"
    assert os.access(script, os.X_OK)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_123.db").write_bytes(b"stale")  # left by an earlier run
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    r = subprocess.run(["sh", str(script), "sh", "-c", 'ls -A "$PROMETHEUS_MULTIPROC_DIR"; '
                        'echo "ran $0"', "cmd"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ran", "cmd"]  # empty folder, then the command
    failed = subprocess.run(["sh", str(script), "false"], capture_output=True, env=env,
                            timeout=30)
    assert failed.returncode == 1  # the command's status is the container's


def test_build_stage_files_make_a_complete_package(tmp_path: Path) -> None:
    """Build the wheel from exactly the files the build stage copies: every file the
    service reads at run time must be in it (a regular install, unlike an editable one,
    has nothing else)."""
    build = _stages()[0]
    src = tmp_path / "src"
    src.mkdir()
    workdir = next(args for word, args in build if word == "WORKDIR")
    for sources, dest, _ in _copies(build):
        into = src / Path(workdir, dest).relative_to(workdir)  # dest is relative to WORKDIR
        for source in sources:
            if (REPO / source).is_dir():  # COPY dir dest: the contents become dest
                shutil.copytree(REPO / source, into,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:  # COPY a b ./: into the folder
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, into / Path(source).name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), "."],
                       cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("filterd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [p.relative_to(REPO).as_posix() for p in (REPO / "filterd").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
              and p.suffix != ".md"]
    missing = sorted(set(needed) - names)
    assert not missing, f"not in the wheel (add to package-data): {missing}"


# ------------------------------------------------------------------ metric names


def _exported_names() -> set[str]:
    """Every sample name filterd's collectors expose (counters: _total, histograms: _bucket,
    _sum, _count), plus Prometheus' own ``up``."""
    from filterd.metrics import Metrics

    names = {"up"}
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names


_METRIC = re.compile(r"\b(filterd_[a-z0-9_]+|up)\b(?!\s*\()")
_MATCHER = re.compile(r"\b(reason|flag|category|role|stage|kind|queue)\s*=\s*\"([^\"]*)\"")


def _label_values() -> dict[str, set[str]]:
    from filterd.classify.guard import FAILURE_REASONS
    from filterd.metrics import REJECT_REASONS
    from filterd.route.policy import DEFAULT_POLICY_FILE
    from filterd.types import CATEGORIES, FLAGS

    policy = yaml.safe_load(Path(DEFAULT_POLICY_FILE).read_text())
    queues = {q["name"] for q in policy["queues"].values()} | {"none"}
    return {"reason": {*REJECT_REASONS, *FAILURE_REASONS}, "flag": set(FLAGS),
            "category": set(CATEGORIES), "role": {"customer", "agent", "bot"},
            "stage": {"detect", "classify", "decide"}, "kind": {"message", "alert"},
            "queue": queues}


def _check_expr(expr: str, known: set[str], values: dict[str, set[str]]) -> None:
    names = set(_METRIC.findall(expr))
    assert names, f"no filterd metric in: {expr}"
    assert names <= known, f"unknown metric(s) {sorted(names - known)} in: {expr}"
    for label, value in _MATCHER.findall(expr):
        if "$" not in value:
            assert value in values[label], f"{label}={value!r} never exported, in: {expr}"


def test_metric_name_check_can_fail() -> None:
    known = _exported_names()
    assert "filterd_messages_total" in known and "filterd_ingest_seconds_bucket" in known
    with pytest.raises(AssertionError, match="unknown metric"):
        _check_expr("rate(filterd_messages[5m])", known, _label_values())  # no _total
    with pytest.raises(AssertionError, match="never exported"):
        _check_expr('filterd_flags_total{flag="threats"}', known, _label_values())


# ------------------------------------------------------------------ Prometheus rules


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_reference_only_exported_metrics() -> None:
    known, values = _exported_names(), _label_values()
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules)  # names are unique
    for rule in rules:
        _check_expr(rule["expr"], known, values)
        assert rule["labels"]["severity"] in ("page", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alert_rules_cover_the_operational_questions() -> None:
    exprs = " ".join(r["expr"] for r in _rules())
    for metric in ("up", "filterd_model_circuit_state", "filterd_degraded_messages_total",
                   "filterd_dead_letters_total", "filterd_outbox_depth",
                   "filterd_ingest_seconds_bucket", "filterd_rejected_requests_total",
                   "filterd_flags_total", "filterd_messages_total"):
        assert re.search(rf"\b{metric}\b", exprs), metric


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install "
                                              "prometheus)")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    assert PROMTOOL is not None
    folder = DEPLOY / "prometheus"
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"],
                 ["check", "config", "prometheus.yml"]):
        r = subprocess.run([PROMTOOL, *args], cwd=folder, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"promtool {' '.join(args)}:\n{r.stdout}\n{r.stderr}"


def test_rule_unit_tests_cover_every_paging_alert() -> None:
    tested = {t["alertname"] for case in yaml.safe_load(
        (DEPLOY / "prometheus" / "alerts_test.yml").read_text())["tests"]
        for t in case["alert_rule_test"] if t["exp_alerts"]}
    paging = {r["alert"] for r in _rules() if r["labels"]["severity"] == "page"}
    assert paging - {"FilterdTargetMissing"} <= tested


# ------------------------------------------------------------------ Grafana


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((DEPLOY / "grafana" / "filterd-dashboard.json").read_text()))


def test_dashboard_queries_reference_only_exported_metrics() -> None:
    known, values = _exported_names(), _label_values()
    panels = [p for p in _dashboard()["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert len({p["id"] for p in _dashboard()["panels"]}) == len(_dashboard()["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            _check_expr(target["expr"], known, values)
            assert target["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_dashboard_has_a_prometheus_datasource_variable() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"${datasource}"} == {v["datasource"]["uid"] for v in variables.values()
                                 if "datasource" in v}


def test_compose_and_provisioning_mount_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "filterd.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounted = [v for v in compose["services"]["grafana"]["volumes"] if f":{path}/" in v]
    assert mounted, "the dashboard must be mounted where the provider reads it"
