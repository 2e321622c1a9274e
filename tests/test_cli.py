"""`filterd check`: one text, many texts, and the JSONL contract of INTERFACE.md."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from filterd.cli import main, run_jsonl


def _lines(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_check_one_text_prints_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "you are a useless idiot"]) == 0
    [v] = _lines(capsys.readouterr().out)
    assert v["category"] == "abusive"
    assert "idiot" not in v["text_masked"]


def test_check_many_texts_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "hi, how do I pay my bill?", "3 hours on hold, ridiculous"]) == 0
    vs = _lines(capsys.readouterr().out)
    assert [v["id"] for v in vs] == ["1", "2"]
    assert [v["category"] for v in vs] == ["neutral", "frustrated"]


def test_check_empty_text_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "   "]) == 1
    [v] = _lines(capsys.readouterr().out)
    assert "empty" in v["error"]


def test_jsonl_contract(real_filter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        b'{"id": "a1", "text": "still no internet, 3rd day", "conversation_id": "c1"}',
        b'{"id": "b1", "text": "Can I change my plan?"}',
        b"this is not json",
        b'{"id": "bad-utf8", "text": "caf\xe9"}',  # Latin-1 byte: not UTF-8
        b'{"id": "no-text"}',
        b'{"id": "empty", "text": ""}',
        b'["a", "list"]',
        b"",
        b'{"id": 7, "text": "you f4cking idiot", "conversation_id": "c1"}',
        b'{"id": "a3", "text": "you moron", "conversation_id": "c1"}',
    ]
    out = io.StringIO()
    errors = run_jsonl(real_filter, io.BytesIO(b"\n".join(rows) + b"\n"), out)
    got = _lines(out.getvalue())
    # one output line per non-blank input line, in input order
    assert len(got) == 9 and errors == 5
    assert [g.get("id") for g in got] == ["a1", "b1", None, None, "no-text", "empty", None, 7,
                                          "a3"]
    assert "not valid JSON" in got[2]["error"] and "line 3" in got[2]["error"]
    assert "UTF-8" in got[3]["error"]
    assert "missing field 'text'" in got[4]["error"]
    assert "empty" in got[5]["error"]
    assert "JSON object" in got[6]["error"]
    # the integer id is echoed as given; obfuscated abuse is masked
    assert got[7]["category"] == "abusive" and "f4cking" not in got[7]["text_masked"]
    # c1 is one conversation: its second abusive message strikes out
    assert got[8]["route"]["queue"] == "abuse_review"


def test_jsonl_without_conversation_id_is_one_conversation_per_line(real_filter) -> None:  # type: ignore[no-untyped-def]
    rows = b'{"id": 1, "text": "you idiot"}\n{"id": 2, "text": "you moron"}\n'
    out = io.StringIO()
    run_jsonl(real_filter, io.BytesIO(rows), out)
    queues = [v["route"]["queue"] for v in _lines(out.getvalue())]
    assert "abuse_review" not in queues  # no strikes carried between unrelated lines


def test_missing_jsonl_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--jsonl", "/nonexistent/in.jsonl"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_installed_entry_point_runs(tmp_path: Path) -> None:
    """The console script a user gets after install, as a real process."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "x", "text": "my phone number is 415-555-0132"}\n')
    p = subprocess.run([sys.executable, "-m", "filterd.cli", "check", "--jsonl", str(src)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    [v] = _lines(p.stdout)
    assert v["id"] == "x" and "pii" in v["flags"] and "555-0132" not in v["text_masked"]
    assert "Traceback" not in p.stderr


def test_serve_workers_use_the_app_factory_and_a_metrics_dir(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    seen: dict[str, object] = {}

    def fake_run(app: object, **kw: object) -> None:
        mp = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        seen.update(app=app, dir=mp, dir_existed=Path(mp).is_dir(), **kw)

    db = f"sqlite:///{tmp_path}/w.db"
    # set (and so restored by monkeypatch), empty: the command makes a temporary one
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.setenv("FILTERD_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert main(["serve", "--workers", "3", "--database-url", db]) == 0
    assert seen["app"] == "filterd.api.app:create_app_from_env"
    assert (seen["factory"], seen["workers"], seen["dir_existed"]) == (True, 3, True)
    assert os.environ["FILTERD_DATABASE_URL"] == db  # what every worker reads
    assert not Path(str(seen["dir"])).exists()  # removed when the server stops
    with pytest.raises(SystemExit):
        main(["serve", "--workers", "0"])


def test_jsonl_lone_surrogate_escape_is_an_error_line(real_filter) -> None:  # type: ignore[no-untyped-def]
    """JSON can escape half a UTF-16 pair; that is not text: an error line, not a crash."""
    rows = b'{"id": "s", "text": "bad \\ud800 text"}\n{"id": "ok", "text": "fine"}\n'
    out = io.StringIO()
    errors = run_jsonl(real_filter, io.BytesIO(rows), out)
    got = _lines(out.getvalue())
    assert errors == 1 and len(got) == 2
    assert "surrogate" in got[0]["error"] and "line 1" in got[0]["error"]
    assert got[1]["id"] == "ok" and got[1]["category"] == "neutral"
    out.getvalue().encode("utf-8")  # everything written is valid UTF-8


@pytest.mark.parametrize("cap", ["edos/abusive", "edos/abusive=x", "edos=5", "/abusive=5",
                                 "edos/abusive=0"])
def test_data_build_bad_cap_is_a_clear_error(
    cap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["data", "build", "--data", str(tmp_path), "--out", str(tmp_path / "o.jsonl"),
                 "--cap", cap])
    assert code != 0
    assert "SOURCE/CATEGORY=N" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
