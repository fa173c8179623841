"""Provenance and the writers that stamp it: commit format, markdown tables, CSV comment lines."""

import csv
import re

from engine.evaluation import report


def test_provenance_names_command_commit_and_machine():
    prov = report.provenance(["--quick", "--out", "/tmp/x y"])
    assert prov["command"] == "python scripts/evaluate.py --quick --out '/tmp/x y'"
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", prov["commit"]), prov["commit"]
    line = report.provenance_line(prov)
    assert prov["command"] in line and prov["commit"] in line and "CPUs, torch" in line


def test_markdown_table_formats_and_escapes_cells():
    table = report.markdown_table(["x", "mean |d|"], [[0.12345, None], ["a|b", float("nan")], [3, "F.F"]])
    assert table.splitlines() == [
        "| x | mean \\|d\\| |",
        "|---|---|",
        "| 0.123 | – |",
        "| a\\|b | – |",
        "| 3 | F.F |",
    ]


def test_csv_starts_with_provenance_and_reads_back(tmp_path):
    prov = report.provenance(["--quick"])
    rows = [{"method": "sds", "acc": 0.5, "seed": 0}, {"method": "lmc-sds", "acc": 1.0, "seed": None}]
    report.write_csv(tmp_path / "t.csv", rows, prov)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == f"# command: {prov['command']}" and lines[1] == f"# commit: {prov['commit']}"
    assert lines[2].startswith("# machine: ")
    back = list(csv.DictReader(ln for ln in lines if not ln.startswith("#")))
    assert back == [
        {"method": "sds", "acc": "0.5", "seed": "0"},
        {"method": "lmc-sds", "acc": "1", "seed": ""},
    ]
