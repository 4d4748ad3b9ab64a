"""Every rule of the workflow has its SLURM resources in profiles/slurm and a row in profiles/README.md.

A rule missing from the profile runs with the default 1 GB and 30 minutes, which a new stage may not fit: the
cluster kills it at the limit, far from where the rule was added. This keeps the profile in step with the rules.
"""

from __future__ import annotations

import re

import yaml
from helpers import REPO


def workflow_rules() -> set[str]:
    rules = set()
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        rules |= set(re.findall(r"^rule (\w+):", path.read_text(encoding="utf-8"), flags=re.M))
    return rules - {"all"}


def test_every_rule_has_slurm_resources_and_a_row_in_the_profiles_readme() -> None:
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text(encoding="utf-8"))
    resources = profile["set-resources"]
    rules = workflow_rules()
    assert len(rules) >= 20
    assert sorted(rules - set(resources)) == []
    for rule in rules:
        assert set(resources[rule]) == {"mem_mb", "runtime"}, rule
        assert re.fullmatch(r"\d+ \* attempt", resources[rule]["mem_mb"]), rule
    readme = (REPO / "profiles" / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| rule | jobs |") :]
    assert sorted(r for r in rules if f"`{r}`" not in table) == []
