"""The ``ua-book`` command as a user types it: a refusal is one line on stderr and exit status 1.

``build`` runs the installed console script in a subprocess (the entry point itself); ``is-complete`` calls the
same ``cli.main`` in this process (one interpreter start is enough to cover the console script).
"""
from __future__ import annotations

import json

from runs_fixtures import make_run
from ua_cli import ua_book

from ua_helpers import cli


def test_cli_build_and_is_complete_refuse_in_one_line(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    _edit = json.loads((run / "results.json").read_text())
    _edit["summary"]["significant_tests"] = 42
    (run / "results.json").write_text(json.dumps(_edit))
    assert cli.main(["is-complete", str(run)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "results.json" in err, err
    proc = ua_book("build", "--run-dir", str(run), "--output", str(tmp_path / "html"), check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "results.json" in proc.stderr
    assert not (tmp_path / "html").exists()
