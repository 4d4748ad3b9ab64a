"""The pages' one inline script (the failure-list filter), run by Node.js on a minimal stand-in of the DOM."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from oncofhir.pages import FILTER_SCRIPT

DOM = """
const rows = ["r1 age 5", "r2 sex 1 = Female", "r3 age 7"].map(t => ({textContent: t, hidden: false}));
const count = {textContent: ""};
let handler;
const box = {dataset: {filter: "failures"}, value: "", addEventListener: (e, f) => { handler = f; }};
const table = {querySelectorAll: () => rows};
global.document = {
  querySelectorAll: () => [box],
  getElementById: id => id === "failures" ? table : id === "failures-shown" ? count : null,
};
eval(require("fs").readFileSync(process.argv[2], "utf8"));
for (const query of ["FEMALE", "age", ""]) {
  box.value = query; handler.call(box);
  console.log(rows.map(r => r.hidden ? "-" : "+").join("") + " " + count.textContent);
}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_filter_hides_rows_without_the_text(tmp_path: Path) -> None:
    script, dom = tmp_path / "filter.js", tmp_path / "dom.js"
    script.write_text(str(FILTER_SCRIPT), encoding="utf-8")
    dom.write_text(DOM, encoding="utf-8")
    result = subprocess.run(["node", str(dom), str(script)], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.splitlines() == ["-+- 1", "+-+ 2", "+++ 3"]
