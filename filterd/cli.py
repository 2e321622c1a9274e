"""The ``filterd`` command: check | serve | db | feedback | keys | data | train | teach | eval.

``filterd check "text"`` prints one verdict (JSON) a line; ``--jsonl FILE`` (or ``-``
for standard input) reads ``{"id", "text", "conversation_id"?}`` lines and writes one
verdict a line in input order, as INTERFACE.md specifies. A bad line yields
``{"id": ..., "error": "..."}`` and processing goes on; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from filterd.errors import ConfigError, DataError, FilterdError, InputError

if TYPE_CHECKING:
    from filterd.store.sql import SqlStore

REPO_ROOT = Path(__file__).resolve().parents[1]


def _default_data_dir() -> Path:
    env = os.environ.get("FILTERD_DATA_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def _dump(obj: dict[str, Any], pretty: bool) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None)


# ------------------------------------------------------------------ check


def _jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, record or None, error or None) for every non-blank line."""
    for n, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield n, None, f"line {n}: not valid UTF-8 (byte {e.start})"
            continue
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            yield n, None, f"line {n}: not valid JSON ({e.msg} at column {e.colno})"
            continue
        if not isinstance(rec, dict):
            yield n, None, f"line {n}: expected a JSON object, got {type(rec).__name__}"
            continue
        try:  # JSON may escape a lone UTF-16 surrogate ("\ud800"), which is not Unicode text
            json.dumps(rec, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            yield n, None, (f"line {n}: holds an unpaired UTF-16 surrogate escape "
                            f"(\\u{ord(e.object[e.start]):04x}); send valid Unicode text")
            continue
        yield n, rec, None


def run_jsonl(filter_: Any, stream: IO[bytes], out: IO[str]) -> int:
    """Judge a JSONL stream; returns the number of error lines."""
    from filterd.route.conversation import ConversationState

    states: dict[str, ConversationState] = {}
    errors = 0
    for n, rec, err in _jsonl_records(stream):
        rid = rec.get("id") if rec else None
        if err is None and rec is not None:
            text = rec.get("text")
            conv = rec.get("conversation_id")
            try:
                if "text" not in rec:
                    raise InputError(f"line {n}: missing field 'text'")
                if conv is not None and not isinstance(conv, str | int):
                    raise InputError(f"line {n}: 'conversation_id' must be a string or number")
                key = str(conv) if conv is not None else None
                state = states.get(key, ConversationState()) if key else ConversationState()
                judged = filter_.judge([text], [None if rid is None else str(rid)], [state])[0]
                if key:
                    states[key] = judged.state
                verdict = judged.verdict.as_dict()
                verdict["id"] = rid
                out.write(_dump(verdict, False) + "\n")
                continue
            except FilterdError as e:
                err = str(e) if str(e).startswith("line ") else f"line {n}: {e}"
        errors += 1
        out.write(_dump({"id": rid, "error": err}, False) + "\n")
    out.flush()
    return errors


def cmd_check(args: argparse.Namespace) -> int:
    from filterd.pipeline import Filter

    filter_ = Filter()
    if args.jsonl:
        if args.jsonl == "-":
            errors = run_jsonl(filter_, sys.stdin.buffer, sys.stdout)
        else:
            path = Path(args.jsonl)
            if not path.is_file():
                raise InputError(f"--jsonl file {path} does not exist.")
            with path.open("rb") as f:
                errors = run_jsonl(filter_, f, sys.stdout)
        return 1 if errors else 0
    if not args.texts:
        raise InputError("Give a text to check, e.g. filterd check \"hello\", or --jsonl FILE.")
    status = 0
    for n, text in enumerate(args.texts, 1):
        try:
            print(_dump(filter_.check(text, id=str(n)).as_dict(), args.pretty))
        except InputError as e:
            print(_dump({"id": str(n), "error": str(e)}, args.pretty))
            status = 1
    return status


# ------------------------------------------------------------------ serve / db / feedback


def _service_settings(args: argparse.Namespace) -> Any:
    from filterd.config import load_settings

    overrides = {k: v for k, v in (("host", getattr(args, "host", None)),
                                   ("port", getattr(args, "port", None)),
                                   ("database_url", getattr(args, "database_url", None)))
                 if v is not None}
    return load_settings(**overrides)



def _sql_store(args: argparse.Namespace) -> SqlStore:
    from filterd.store.sql import SqlStore

    settings = _service_settings(args)
    return SqlStore(settings.database_url, busy_timeout_ms=settings.store_busy_timeout_ms)

def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from filterd.api.app import create_app

    settings = _service_settings(args)
    opts: dict[str, Any] = dict(host=settings.host, port=settings.port,
                                log_level=args.log_level or ("info" if args.verbose
                                                             else "warning"),
                                access_log=args.access_log, lifespan="on")
    if args.workers == 1:
        uvicorn.run(create_app(settings, serving=True), **opts)
        return 0
    from filterd.originals import sealer_from_settings

    sealer_from_settings(settings)  # fail here, once, rather than in every worker
    # Each worker builds its own app from the environment: pass the command line down.
    if args.database_url:
        os.environ["FILTERD_DATABASE_URL"] = args.database_url
    with contextlib.ExitStack() as stack:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # one /metrics over all workers
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="filterd-metrics-"))
        uvicorn.run("filterd.api.app:create_app_from_env", factory=True,
                    workers=args.workers, **opts)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    store = _sql_store(args)
    try:
        store.upgrade()
        print(f"schema up to date: {store.url}", file=sys.stderr)
    finally:
        store.close()
    return 0


def cmd_feedback_export(args: argparse.Namespace) -> int:
    store = _sql_store(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        with out.open("w", encoding="utf-8") as f:
            for ex in store.feedback_examples(args.tenant):
                f.write(_dump({"text": ex.text, "category": ex.category,
                               "flags": list(ex.flags)}, False) + "\n")
                n += 1
    finally:
        store.close()
    whose = f"tenant {args.tenant}" if args.tenant else "every tenant"
    print(f"wrote {n} corrections ({whose}) to {out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ keys (access, issue 6)


def _keys_store(args: argparse.Namespace) -> Any:
    """The store of FILTERD_DATABASE_URL (or --database-url), migrated like ``serve`` does."""
    store = _sql_store(args)
    store.upgrade()
    return store


def cmd_keys_create(args: argparse.Namespace) -> int:
    from filterd import apikeys

    store = _keys_store(args)
    try:
        key, token = apikeys.issue(store, args.role, args.tenant, args.name)
    finally:
        store.close()
    print(token)  # the only time the key is shown: only its digest is stored
    print(f"created key {key.id} (role {key.role}, tenant {key.tenant}); store the key now, "
          "it cannot be shown again", file=sys.stderr)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from filterd import apikeys
    from filterd.store.base import utcnow

    store = _keys_store(args)
    try:
        key = store.revoke_api_key(apikeys.resolve_id(args.key_id), utcnow())
    finally:
        store.close()
    print(f"revoked key {key.id} (role {key.role}, tenant {key.tenant}); running services "
          "refuse it within FILTERD_KEY_CACHE_SECONDS", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    store = _keys_store(args)
    try:
        keys = store.api_keys(args.tenant)
    finally:
        store.close()

    def when(t: Any) -> str:
        return t.isoformat(timespec="seconds") + "Z" if t else "-"

    if args.json:
        for k in keys:
            print(_dump({"id": k.id, "tenant": k.tenant, "role": k.role, "name": k.name,
                         "created_at": when(k.created_at), "revoked_at": when(k.revoked_at),
                         "last_used_at": when(k.last_used_at)}, False))
        return 0
    print(f"{'id':<12}  {'role':<10}  {'tenant':<16}  {'created':<20}  {'revoked':<20}  name")
    for k in keys:
        print(f"{k.id:<12}  {k.role:<10}  {k.tenant:<16}  {when(k.created_at):<20}  "
              f"{when(k.revoked_at):<20}  {k.name or ''}")
    return 0


# ------------------------------------------------------------------ privacy (issue 6)


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete what the retention settings say is due (or, --dry-run, count it)."""
    from filterd import privacy

    settings = _service_settings(args)
    store = _keys_store(args)
    try:
        removed = (privacy.preview(store, settings) if args.dry_run
                   else privacy.purge(store, settings))
    finally:
        store.close()
    counts = removed.as_dict()
    if args.json:
        print(_dump({"dry_run": args.dry_run, "removed": counts}, False))
    else:
        print(f"{'would delete' if args.dry_run else 'deleted'} (rows by table):")
        for table, n in counts.items():
            print(f"  {table:<18} {n:>10}")
    print(privacy.describe(settings), file=sys.stderr)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    """Erase everything about one customer of one tenant (right to erasure), audited."""
    import getpass

    from filterd import apikeys, privacy

    tenant = apikeys.check_tenant(args.tenant)
    try:
        who = args.by or f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this container
        who = "cli"
    store = _keys_store(args)
    try:
        erasure = privacy.erase_customer(store, tenant, args.customer, who=who[:200],
                                         role="cli")
    finally:
        store.close()
    detail = erasure.audit.detail or {}
    print(_dump({"tenant": tenant, "customer": detail.get("customer"),
                 "removed": erasure.removed.as_dict(), "audit_id": erasure.audit.id}, False))
    print(f"erased: {erasure.removed.total} rows (audit entry {erasure.audit.id}, as {who})",
          file=sys.stderr)
    return 0


# ------------------------------------------------------------------ data / train / eval


def _parse_caps(items: list[str] | None) -> dict[tuple[str, str], int]:
    """``["edos/abusive=4500", ...]`` -> ``{("edos", "abusive"): 4500}``."""
    caps: dict[tuple[str, str], int] = {}
    for item in items or []:
        key, eq, n = item.partition("=")
        src, slash, cat = key.partition("/")
        if not (eq and slash and src and cat and n.isdigit() and int(n) > 0):
            raise InputError(f"--cap {item!r}: expected SOURCE/CATEGORY=N with N a positive "
                             "whole number, e.g. edos/abusive=4500")
        caps[(src, cat)] = int(n)
    return caps


def cmd_data_build(args: argparse.Namespace) -> int:
    from filterd.classify import data

    examples = data.build(Path(args.data), seed=args.seed, scale=args.scale,
                          keep_splits=Path(args.keep_splits) if args.keep_splits else None,
                          emoji_names=not args.raw_emoji,
                          team_candidates=args.team_candidates,
                          caps=_parse_caps(args.cap))
    data.save(examples, Path(args.out))
    print(json.dumps(data.summary(examples), indent=1))
    print(f"wrote {len(examples)} examples to {args.out}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from filterd.classify import data
    from filterd.classify.train import TrainConfig, train

    device = _train_device(args.device)
    if args.dataset:
        examples = data.load(Path(args.dataset))
    else:
        examples = data.build(Path(args.data), seed=args.build_seed, scale=args.scale,
                              emoji_names=not args.raw_emoji)
    for fb in args.feedback or []:
        examples.extend(data.load_feedback(Path(fb)))
    config = TrainConfig(epochs=args.epochs, seed=args.seed, limit=args.limit,
                         batch_size=args.batch_size, lr=args.lr, num_layers=args.layers,
                         threads=args.threads, device=device, drop_handles=args.drop_handles,
                         distill_weight=args.distill_weight, distill_flags=args.distill_flags,
                         wise=args.wise)
    soft = None
    if args.soft_labels:
        from filterd.classify import distill

        soft = distill.load(Path(args.soft_labels))
    meta = train(examples, Path(args.out), config, soft_labels=soft,
                 keep_weights=args.keep_weights)
    print(json.dumps({k: meta[k] for k in ("train_examples", "valid_examples", "valid_accuracy",
                                           "temperature", "train_seconds")}, indent=1))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from filterd.classify.train import reexport

    meta = reexport(Path(args.model_dir), Path(args.out))
    print(json.dumps({"out": args.out, "quantization": meta["quantization"],
                      "sha256": meta["sha256"]}, indent=1))
    return 0


def cmd_teach(args: argparse.Namespace) -> int:
    from filterd.classify import data, distill

    examples = data.load(Path(args.dataset))
    dirs = [Path(d) for d in args.teacher]
    teachers = distill.teacher_info(dirs)  # checks every folder before any work
    labels = distill.teach(examples, dirs)
    distill.save(labels, teachers, Path(args.out))
    print(f"wrote soft labels for {len(labels)} training texts from {len(dirs)} teachers "
          f"to {args.out}", file=sys.stderr)
    return 0


def _train_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this torch sees no CUDA GPU (a CPU-only build, or "
                          "no driver); train with --device cpu")
    return name


def cmd_eval(args: argparse.Namespace) -> int:
    from filterd.classify import data, evaluate
    from filterd.config import load_settings
    from filterd.pipeline import Filter

    root = Path(args.data)
    tables = Path(args.tables) if args.tables else None
    if tables is not None and not tables.is_dir():  # before the minutes of scoring
        raise DataError(f"--tables {tables}: no such folder (the tests' tables are in "
                        "tests/data of a source checkout)")
    # Offline scoring has no one waiting: no per-call time budget, so a busy machine
    # slows the run instead of failing it (the budget protects live traffic).
    settings = load_settings(model_timeout_ms=0, model_timeout_per_text_ms=0,
                             **({"model_dir": Path(args.model_dir)} if args.model_dir else {}))
    filter_ = Filter(settings)
    examples = (data.load(Path(args.dataset)) if args.dataset
                else data.build(root, seed=args.seed, progress=False))
    sets: dict[str, tuple[list[str], list[str], list[str]]] = {}
    valid = [e for e in examples if e.split == "valid" and e.category]
    sets["valid"] = ([e.text for e in valid], [str(e.category) for e in valid],
                     [e.source for e in valid])
    skipped: dict[str, str] = {}
    for src in data.HOLDOUT_SOURCES:
        rows = [e for e in examples if e.source == src and e.category]
        if not rows:
            skipped[f"holdout:{src}"] = f"the dataset has no rows of {src}"
            continue
        sets[f"holdout:{src}"] = ([e.text for e in rows], [str(e.category) for e in rows],
                                  [src] * len(rows))
    airline = evaluate.airline_path(root)
    if airline.exists():
        texts, gold = evaluate.airline_set(root)
        sets["airline"] = (texts, gold, ["airline"] * len(texts))
        if evaluate.AIRLINE_RELABEL.exists():
            texts, gold = evaluate.airline_relabelled_set(root)
            sets["airline:relabelled"] = (texts, gold, ["airline"] * len(texts))
    else:
        # the real customer-service text is the report's main line: its absence is said
        # out loud (on stderr and in the report), not left for a reader to notice
        skipped["airline"] = (f"{airline} not found (--data {root}): the airline tweets "
                              "and their safety alarms are not in this report")
    if args.limit:
        sets = {k: (t[: args.limit], g[: args.limit], s[: args.limit])
                for k, (t, g, s) in sets.items()}
    predictors = {"filterd": evaluate.filterd_predictor(filter_)}
    if not args.no_baselines:
        predictors.update(evaluate.BASELINES)
    report = evaluate.evaluate(predictors, sets)
    abusive_valid = [t for t, g in zip(sets["valid"][0], sets["valid"][1], strict=True)
                     if g == "abusive"]
    report["obfuscation"] = evaluate.obfuscation_check(filter_, abusive_valid)
    if "abusive" in sets["valid"][1]:
        from filterd.calibrate import abusive_operating_points
        report["valid_abusive_operating_points"] = abusive_operating_points(
            filter_, sets["valid"][0], sets["valid"][1])
    if "airline" in sets:
        report["airline_safety_alarms"] = evaluate.safety_alarms(filter_, sets["airline"][0])
    if args.emoji_probe:
        calm = [t for t, g in zip(sets["valid"][0], sets["valid"][1], strict=True)
                if g in ("neutral", "frustrated")]
        report["emoji_probe"] = evaluate.emoji_probe(filter_, calm)
    if tables is not None:
        report.update(evaluate.case_tables(filter_, tables))
    if skipped:
        report["skipped"] = skipped
        for name, why in skipped.items():
            print(f"filterd eval: {name} left out: {why}", file=sys.stderr)
    extras = ("obfuscation", "airline_safety_alarms", "emoji_probe", "safety_table",
              "telecom_table", "valid_abusive_operating_points", "skipped")
    evaluate.save_report(report, Path(args.out))
    print(evaluate.format_table({k: v for k, v in report.items() if k not in extras}))
    if report["obfuscation"]["n"]:
        print("abusive recall by obfuscation:", {k: v["abusive_recall"] for k, v in
                                                report["obfuscation"].items() if k != "n"})
    if "valid_abusive_operating_points" in report:
        op = report["valid_abusive_operating_points"]
        best = op["best_recall_at_min_precision"]
        print(f"valid abusive recall at precision >= {op['target']['min_precision']}: " + (
            f"{best['recall']:.3f} (threshold {best['threshold']}, precision "
            f"{best['precision']:.3f}); target {op['target']['min_recall']} "
            f"{'reachable' if op['target_reachable'] else 'not reachable'} on these rows"
            if best else "no threshold reaches that precision"))
    if "airline_safety_alarms" in report:
        a = report["airline_safety_alarms"]
        print("safety flags on the airline tweets (nearly all false alarms):",
              {f: a[f]["count"] for f in evaluate.SAFETY_FLAGS},
              f"crisis route {a['crisis_route']}, supervisor route {a['supervisor_route']}")
    if "emoji_probe" in report:
        pr = report["emoji_probe"]
        print(f"calm and frustrated validation rows called abusive ({pr['n']}): "
              f"{pr['plain_abusive']:.3f} as written, {pr['with_emoji_abusive']:.3f} with "
              "one emoji appended")
    if "safety_table" in report:
        st = report["safety_table"]
        print("safety table:", {f: f"{st[f]['caught']}/{st[f]['n']}" for f in
                                evaluate.SAFETY_FLAGS},
              f"hard negatives raising a flag {st['hard_negatives']['alarms']}/"
              f"{st['hard_negatives']['n']}")
    if "telecom_table" in report:
        tt = report["telecom_table"]
        print(f"telecom table: accuracy {tt['accuracy']:.3f}, must rows {tt['must_accuracy']}")
    print(f"full report: {args.out}", file=sys.stderr)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from filterd import calibrate
    from filterd.config import load_settings
    from filterd.pipeline import Filter

    rows = calibrate.load_labelled(Path(args.labelled))
    overrides: dict[str, object] = {"model_timeout_ms": 0}  # offline: no time budget
    if args.model_dir:
        overrides["model_dir"] = Path(args.model_dir)
    if args.policy:
        overrides["policy_file"] = Path(args.policy)
    report = calibrate.calibrate(Filter(load_settings(**overrides)), rows,
                                 min_abusive_precision=args.min_abusive_precision)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    before, after = report["held_out_before"], report["held_out_after"]
    print(f"# {report['rows']['fit']} rows to fit, {report['rows']['held_out']} held out")
    print(f"# held-out macro-F1 {before['macro_f1']} -> {after['macro_f1']} "
          f"(accuracy {before['accuracy']} -> {after['accuracy']})")
    for c, m in after["per_class"].items():
        if m["support"]:
            b = before["per_class"][c]
            print(f"#   {c}: recall {b['recall']} -> {m['recall']}, "
                  f"precision {b['precision']} -> {m['precision']}")
    if report["abusive_note"]:
        print(f"# note: {report['abusive_note']}")
    print(calibrate.policy_snippet(report), end="")
    return 0


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="filterd", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="judge texts and print verdicts as JSON")
    c.add_argument("texts", nargs="*", help="texts to judge (each one a verdict line)")
    c.add_argument("--jsonl", metavar="FILE", help="JSONL input ('-' for stdin)")
    c.add_argument("--pretty", action="store_true", help="indent the JSON")
    c.set_defaults(func=cmd_check)

    s = sub.add_parser("serve", help="run the HTTP service (FILTERD_* settings)")
    s.add_argument("--host", help="listen address (FILTERD_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (FILTERD_PORT, default 8080)")
    s.add_argument("--database-url", help="FILTERD_DATABASE_URL (default sqlite:///filterd.db)")
    s.add_argument("--access-log", action="store_true", help="log every request line")
    s.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's own log level (default: info with -v, else warning); "
                        "'info' reports each worker's start without filterd's per-message "
                        "INFO lines")
    s.add_argument("--workers", type=_positive, default=1,
                   help="uvicorn worker processes (default 1; >1 sets up Prometheus "
                        "multiprocess metrics in a temporary PROMETHEUS_MULTIPROC_DIR)")
    s.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="the service database").add_subparsers(dest="db_cmd",
                                                                         required=True)
    u = db.add_parser("upgrade", help="apply the schema migrations")
    u.add_argument("--database-url", help="FILTERD_DATABASE_URL")
    u.set_defaults(func=cmd_db_upgrade)

    fb = sub.add_parser("feedback", help="agents' corrections").add_subparsers(
        dest="feedback_cmd", required=True)
    x = fb.add_parser("export", help="write corrections as JSONL for filterd train --feedback")
    x.add_argument("--out", required=True, help="JSONL file to write")
    x.add_argument("--database-url", help="FILTERD_DATABASE_URL")
    x.add_argument("--tenant", help="one tenant's corrections (default: every tenant's)")
    x.set_defaults(func=cmd_feedback_export)

    # ---- keys (access, issue 6)
    from filterd.store.base import DEFAULT_TENANT, KEY_ROLES

    k = sub.add_parser("keys", help="API keys (stored hashed)").add_subparsers(
        dest="keys_cmd", required=True)
    kc = k.add_parser("create", help="make a key and print it once")
    kc.add_argument("--role", required=True, choices=KEY_ROLES)
    kc.add_argument("--tenant", default=DEFAULT_TENANT, help="whose data the key sees")
    kc.add_argument("--name", help="a label, e.g. who holds the key")
    kc.add_argument("--database-url", help="FILTERD_DATABASE_URL")
    kc.set_defaults(func=cmd_keys_create)
    kr = k.add_parser("revoke", help="revoke a key (its id, as `keys list` shows)")
    kr.add_argument("key_id")
    kr.add_argument("--database-url", help="FILTERD_DATABASE_URL")
    kr.set_defaults(func=cmd_keys_revoke)
    kl = k.add_parser("list", help="list keys: ids, roles, tenants, dates; never a secret")
    kl.add_argument("--tenant", help="one tenant's keys only")
    kl.add_argument("--json", action="store_true", help="one JSON object a line")
    kl.add_argument("--database-url", help="FILTERD_DATABASE_URL")
    kl.set_defaults(func=cmd_keys_list)
    # ---- end of keys

    # ---- privacy (issue 6): retention and the right to erasure
    pu = sub.add_parser("purge", help="delete transcripts and audit entries past retention "
                                      "(FILTERD_RETENTION_DAYS, FILTERD_AUDIT_RETENTION_DAYS)")
    pu.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    pu.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    pu.add_argument("--database-url", help="FILTERD_DATABASE_URL")
    pu.set_defaults(func=cmd_purge)
    er = sub.add_parser("erase", help="delete everything about one customer (right to "
                                      "erasure), recorded in the audit log")
    er.add_argument("--customer", required=True, metavar="ID",
                    help="the customer's sender id, as the chat platform sends it")
    er.add_argument("--tenant", default=DEFAULT_TENANT, help="the customer's tenant")
    er.add_argument("--by", help="who asks, for the audit log (default: cli:<login name>)")
    er.add_argument("--database-url", help="FILTERD_DATABASE_URL")
    er.set_defaults(func=cmd_erase)
    # ---- end of privacy

    d = sub.add_parser("data", help="training data").add_subparsers(dest="data_cmd", required=True)
    b = d.add_parser("build", help="build the labelled training set")
    b.add_argument("--data", default=str(_default_data_dir()))
    b.add_argument("--out", default="runs/dataset.jsonl")
    b.add_argument("--keep-splits", metavar="BUILD.jsonl",
                   help="an earlier build: its texts keep their train/valid split (compare a "
                        "new model with the one trained on it on rows neither has seen)")
    b.add_argument("--seed", type=int, default=13)
    b.add_argument("--scale", type=float, default=1.0, help="shrink every source cap")
    emoji = b.add_mutually_exclusive_group()
    emoji.add_argument("--raw-emoji", action="store_true",
                       help="leave emoji as they are, without rule R8: the build of models up "
                            "to v7 (the default names them, as the shipped model was trained)")
    # the default since the shipped model was trained on names; accepted so that the
    # model card's earlier commands still run
    emoji.add_argument("--emoji-names", action="store_true", help=argparse.SUPPRESS)
    b.add_argument("--team-candidates", action="store_true",
                   help="also read filterd/classify/team/candidates/ (team text measured for "
                        "a model that was not shipped; model card, v11)")
    b.add_argument("--cap", action="append", metavar="SOURCE/CATEGORY=N",
                   help="replace one per-(source, category) cap for this build (repeatable; "
                        "a raised cap adds rows and keeps every row the default kept)")
    b.set_defaults(func=cmd_data_build)

    t = sub.add_parser("train", help="fine-tune the classifier")
    t.add_argument("--data", default=str(_default_data_dir()))
    t.add_argument("--dataset", help="a built dataset JSONL (skips the build)")
    t.add_argument("--feedback", action="append", help="feedback JSONL to add (repeatable)")
    t.add_argument("--out", default="runs/model")
    t.add_argument("--epochs", type=float, default=3.0)
    t.add_argument("--seed", type=int, default=22,
                   help="training seed (the shipped model v21's: 37, with --threads 1, "
                        "--soft-labels and --no-distill-flags; model card)")
    t.add_argument("--build-seed", type=int, default=13,
                   help="the data build's seed, without --dataset (the split; 13 for every "
                        "model since v3)")
    t.add_argument("--scale", type=float, default=1.0)
    t.add_argument("--raw-emoji", action="store_true",
                   help="build with emoji left as they are (v7's build; see data build)")
    t.add_argument("--drop-handles", action=argparse.BooleanOptionalAction, default=True,
                   help="train (and have serving read) text without the @user/http tokens "
                        "that handles and URLs leave (default on, the shipped v21's, as v17's; "
                        "--no-drop-handles trains as models up to v15 were; model card, v16)")
    t.add_argument("--limit", type=int, default=None, help="train on N examples only")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--layers", type=int, default=None, help="keep the first N encoder layers")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where to train (default cpu, the shipped model's; auto: a GPU if any)")
    t.add_argument("--soft-labels", metavar="FILE",
                   help="also learn the category and flag probabilities that `filterd teach` "
                        "wrote for the training rows (knowledge distillation; model card, "
                        "Session 14)")
    t.add_argument("--distill-weight", type=float, default=0.5,
                   help="with --soft-labels: the share of the category and flag losses given "
                        "to the soft labels, the rest to the gold labels (default 0.5)")
    t.add_argument("--distill-flags", action=argparse.BooleanOptionalAction, default=True,
                   help="with --soft-labels: also learn the teachers' flag probabilities "
                        "(default, as v20); --no-distill-flags keeps the flag heads on the "
                        "gold flags alone")
    t.add_argument("--wise", action="store_true",
                   help="after fine-tuning, average the weights with the base encoder's "
                        "(WiSE-FT, with heads trained on its frozen features) at the alpha the "
                        "validation split chooses (model card, Session 17)")
    t.add_argument("--keep-weights", action="store_true",
                   help="also write the fp32 weights (weights.safetensors, about 90 MB), so "
                        "that `filterd export` can export the model again without retraining")
    t.set_defaults(func=cmd_train)

    ex = sub.add_parser("export", help="export again a model trained with --keep-weights "
                                       "(ONNX, int8 with one scale per output channel)")
    ex.add_argument("model_dir", help="the trained model folder (with weights.safetensors)")
    ex.add_argument("--out", required=True, help="the folder to write the new export to")
    ex.set_defaults(func=cmd_export)

    te = sub.add_parser("teach", help="soft labels for distillation: several trained models' "
                                      "averaged outputs on a dataset's training rows")
    te.add_argument("--dataset", required=True, help="a built dataset JSONL")
    te.add_argument("--teacher", action="append", required=True, metavar="MODEL_DIR",
                    help="a trained model folder (repeatable; their outputs are averaged)")
    te.add_argument("--out", default="runs/soft_labels.jsonl")
    te.set_defaults(func=cmd_teach)

    cal = sub.add_parser(
        "calibrate", help="fit the category thresholds to labelled messages of your own traffic")
    cal.add_argument("labelled", help="JSONL of {\"text\": ..., \"category\": ...} rows")
    cal.add_argument("--model-dir", help="model folder (default: the shipped model)")
    cal.add_argument("--policy", help="the policy file to start from (default: the shipped one)")
    cal.add_argument("--min-abusive-precision", type=float, default=0.85)
    cal.add_argument("--out", help="write the full report (JSON) here")
    cal.set_defaults(func=cmd_calibrate)

    e = sub.add_parser("eval", help="evaluate on held-out data against baselines")
    e.add_argument("--data", default=str(_default_data_dir()))
    e.add_argument("--dataset", help="a built dataset JSONL (for its valid/holdout rows)")
    e.add_argument("--model-dir", help="model folder (default: the shipped model)")
    e.add_argument("--out", default="runs/eval.json")
    e.add_argument("--seed", type=int, default=13)
    e.add_argument("--limit", type=int, default=None, help="first N rows of each set")
    e.add_argument("--no-baselines", action="store_true")
    e.add_argument("--tables", metavar="DIR",
                   help="also score the tests' hand-written tables in DIR (tests/data): "
                        "safety-flag recall, hard-negative alarms, telecom accuracy")
    e.add_argument("--emoji-probe", action="store_true",
                   help="also: calm and frustrated validation rows called abusive, as "
                        "written and with one emoji appended (12 emoji in turn)")
    e.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except FilterdError as e:
        print(f"filterd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
