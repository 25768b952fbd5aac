"""Mutation testing: would the fast tests notice a bug in the modules that decide what gate trusts?

For each module of MODULES, mutmut (pinned in the `mutation` extra) makes every small change it
knows (`>=` to `>`, `and` to `or`, a string or number altered, a call's argument dropped, ...),
runs the fast tests that cover the module against each one, and counts the mutants they kill.
A mutant no test kills is a bug the suite would let through: add a test that kills it, or, when
it changes nothing a user can see, record why in bench/mutation_survivors.toml. The script prints
the score of each module and every survivor, marked "reviewed" with that reason or "NOT REVIEWED".

    pip install -e '.[test,mutation]'
    python bench/mutation.py                  # every module of MODULES
    python bench/mutation.py gate/ci/plan.py     # one module

It runs in a copy of the repository (the work tree is never touched: mutmut writes its mutants
beside the copy) and takes a few minutes per module on two cores. mutmut rather than cosmic-ray:
measured on gate/policy/judge.py here, mutmut ran 350 mutants in 40 s (each mutant a forked child of
one pytest process that has imported everything once) where cosmic-ray, which starts a fresh
pytest per mutant, took 1.7 s a mutant (11 minutes), and cosmic-ray edits the module in place:
an interrupted run left a mutated gate/policy/judge.py behind.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REVIEWED = Path(__file__).with_name("mutation_survivors.toml")

# Each module, and the fast tests (no TensorFlow, no gate run) that cover it. Add a module with its tests
# here; the lead runs the cache key and entry check, the shard reader and the escaping function this way too.
MODULES: dict[str, tuple[str, ...]] = {
    "gate/policy/judge.py": (
        "tests/test_judge.py",
        "tests/test_search.py::test_a_candidate_that_cannot_meet_a_hard_requirement_is_skipped_untried",
    ),
    "gate/policy/checks.py": (
        "tests/test_judge.py",
        "tests/test_tflm.py::test_memory_checks_judge_the_device_figures_in_kib",
        "tests/test_tflm.py::test_memory_checks_skip_on_litert_saying_which_target_measures_them",
        "tests/test_ethos_u.py::test_the_inference_time_check_skips_when_nothing_runs_on_the_npu",
        "tests/test_tflm.py::test_the_supported_operators_check_fails_what_tflm_lacks_and_skips_elsewhere",
        "tests/test_ethos_u.py::test_the_npu_share_check_names_what_runs_on_the_cpu",
        "tests/test_figures.py",
        "tests/test_tasks.py::test_auc_max_drop_judges_the_anomaly_task_only",
    ),
    "gate/ci/plan.py": (
        "tests/test_plan.py",
        "tests/test_workflows.py::test_what_the_workflows_install_from_is_gate_itself_to_plan_and_to_the_"
        "codeowners_example",
    ),
    "gate/escape.py": ("tests/test_escape.py", "tests/test_attacks.py"),
    "gate/scheduling/cache.py": ("tests/test_cache.py", "tests/test_attacks.py"),
    "gate/ci/merge.py": (
        "tests/test_merge.py",
        "tests/test_attacks.py",
        "tests/test_comment.py",
        # It watches what `gate comment` imports, and mutmut's mutants import mutmut.
        "--deselect=tests/test_comment.py::test_gate_comment_imports_only_what_its_workflow_installs",
    ),
    "gate/readback.py": ("tests/test_readback.py", "tests/test_attacks.py"),
    "gate/reporting/verify.py": (
        "tests/test_verify.py",
        "tests/test_attacks.py",
        "tests/test_results.py",
        "tests/test_target_results.py",
        "tests/test_merge.py::test_a_report_read_back_is_refused_naming_the_field",  # read_report, moved from merge
    ),
    # The fast tests below are those that run each module in the pytest process, found with coverage's per-test
    # contexts over `pytest -m "not slow"`: coverage run --rcfile=<dynamic_context = test_function> -m pytest.
    "gate/reporting/verify_figures.py": (
        "tests/test_verify_figures.py",
        "tests/test_target_results.py",
        "tests/test_verify.py",
        "tests/test_attacks.py",
        "tests/test_outputs.py::test_a_two_output_result_reads_back_and_a_forged_one_is_refused",
    ),
    "gate/reporting/verify_outputs.py": (
        "tests/test_outputs.py::test_a_two_output_result_reads_back_and_a_forged_one_is_refused",
        "tests/test_outputs.py::test_each_outputs_figures_are_read_back_as_a_one_output_models_are",
        "tests/test_several_on_device.py::test_a_two_output_file_tflm_cannot_run_reads_back_with_no_one_litert_"
        "evaluation",
        "tests/test_verify.py",
        "tests/test_attacks.py",
    ),
    "gate/reporting/verify_comparison.py": (
        "tests/test_verify.py",
        "tests/test_attacks.py",
        "tests/test_outputs.py::test_the_base_branch_delta_compares_an_output_with_itself_and_names_it",
        "tests/test_comment.py::test_the_comment_names_the_gated_commit_and_the_base_it_compares_with",
        "tests/test_comment.py::test_a_comparison_with_another_commit_than_the_base_is_called_out",
        "tests/test_merge.py::test_a_report_read_back_is_refused_naming_the_field",
    ),
    "gate/figures.py": (
        "tests/test_figures.py",
        "tests/test_judge.py",
        "tests/test_messages.py",
        "tests/test_rendering.py",
        "tests/test_target_results.py",
        "tests/test_tflm.py::test_memory_checks_judge_the_device_figures_in_kib",
        "tests/test_tflm.py::test_memory_checks_skip_on_litert_saying_which_target_measures_them",
        "tests/test_tflm.py::test_the_supported_operators_check_fails_what_tflm_lacks_and_skips_elsewhere",
        "tests/test_ethos_u.py::test_the_inference_time_check_skips_when_nothing_runs_on_the_npu",
        "tests/test_ethos_u.py::test_the_npu_share_check_names_what_runs_on_the_cpu",
    ),
    "gate/policy/fidelity.py": (
        "tests/test_fidelity.py",
        # It copies the repository's models/machine_ad, which the copy mutmut runs in leaves out.
        "--deselect=tests/test_fidelity.py::test_gate_validate_asks_labels_only_of_a_task_that_scores_them",
        "tests/test_verify_figures.py",
        "tests/test_outputs.py::test_each_output_is_judged_by_its_task_check_and_the_fidelity_checks_under_its_own_name",
        "tests/test_outputs.py::test_a_worst_output_scored_by_fidelity_shows_its_fidelity_figures_in_the_summary_as_"
        "one_output_does",
        "tests/test_outputs.py::test_the_report_names_the_worst_output_in_the_summary_and_shows_every_output",
        "tests/test_target_results.py::test_fidelity_figures_read_back_belong_to_a_candidate_and_its_evaluation",
    ),
    "gate/measurement/custom.py": (
        "tests/test_custom_task.py",
        "tests/test_custom_metric.py",
        "tests/test_target_results.py::test_a_custom_metric_on_tflm_says_its_interval_is_of_litert_outputs_beside_"
        "the_devices_notes",
    ),
    "gate/targets/tflm_ops.py": (
        "tests/test_tflm.py::test_two_models_resolver_headers_name_different_things_and_can_each_be_included_twice",
        "tests/test_tflm.py::test_the_resolver_snippet_cannot_be_broken_out_of_by_a_model_name",
        "tests/test_target_results.py",
        "tests/test_verify_figures.py",
    ),
    # Run in the pytest process by one fast test each; the rest of them runs in gate runs (slow tests).
    "gate/targets/agreement.py": (
        "tests/test_several_on_device.py::test_the_agreement_of_several_outputs_counts_each_in_its_own_"
        "quantization_steps",
    ),
    "gate/gating/several.py": (
        "tests/test_outputs.py::test_qat_trains_every_output_of_a_model_with_several_unless_one_has_no_training_loss",
    ),
    # No fast test runs these: their tests are slow ones (real conversions; a gate run whose QAT process runs
    # heads.py), so each mutant converts real models, and a mutant of heads.py is killed only if the QAT process
    # imports the mutated copy. Neither entry has been run: test_splice.py reads the repository's models/, which
    # copy_repository leaves out, so its run stops at mutmut's first test run until models/ is copied too.
    "gate/quantization/splice.py": ("tests/test_splice.py",),
    "gate/quantization/qat/heads.py": ("tests/test_qat_outputs.py",),
}

# A mutant whose tests run out of time is caught too: a test that does not end fails the suite (e.g. one
# that copies all of a sparse gigabyte where gate copies its last 4 MiB).
CAUGHT = ("killed", "timeout")

# Read inside the copy, with mutmut's own functions (mutmut is pinned, so their names hold).
_RESULTS = """
import json
from mutmut.__main__ import SourceFileMutationData, get_diff_for_mutant, walk_mutatable_files
from mutmut.stats import status_by_exit_code

found = {}
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        found[name] = {"status": status, "diff": "" if status == "killed" else get_diff_for_mutant(name, path=path)}
print(json.dumps(found))
"""


def copy_repository(target: Path) -> None:
    """The work tree as it is (committed or not, without what git ignores), copied to `target`."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if source.is_file() and not name.startswith("models/"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def mutmut_config(module: str, tests: tuple[str, ...]) -> str:
    lines = "\n    ".join
    return (
        "[mutmut]\n"
        "source_paths = gate\n"
        f"only_mutate = {module}\n"
        f"pytest_add_cli_args_test_selection =\n    {lines(tests)}\n"
        "also_copy =\n    tests\n    policies\n    README.md\n    docs\n    .github\n"
    )


def run_module(copy: Path, module: str, tests: tuple[str, ...]) -> dict[str, dict[str, str]]:
    shutil.rmtree(copy / "mutants", ignore_errors=True)
    (copy / "setup.cfg").write_text(mutmut_config(module, tests))  # mutmut reads [mutmut] here
    mutmut = Path(sys.executable).with_name("mutmut")
    run = subprocess.run([str(mutmut), "run"], cwd=copy, capture_output=True, text=True)
    if run.returncode:  # e.g. a selected test that fails without any mutant: mutmut says which, at its end
        said = (run.stdout + run.stderr).replace("\r", "\n").splitlines()
        raise SystemExit(f"{module}: mutmut run failed (exit {run.returncode}):\n" + "\n".join(said[-40:]))
    done = subprocess.run([sys.executable, "-c", _RESULTS], cwd=copy, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def changed_lines(diff: str) -> tuple[str, str]:
    """What a mutant changed, as (removed, added) code without indentation: its identity across renumbering."""
    lines = diff.splitlines()
    removed = "\n".join(line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---"))
    added = "\n".join(line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++"))
    return removed, added


_MUTANT_NAME = re.compile(r"^(?P<module>.+?)\.x(?:_(?P<function>.+)|ǁ(?P<cls>[^ǁ]+)ǁ(?P<method>.+))__mutmut_\d+$")


def function_of(mutant: str) -> str:
    """The function a mutant is in: `gate.policy.checks.x__decided__mutmut_3` → `gate.policy.checks._decided`."""
    match = _MUTANT_NAME.match(mutant)
    if not match:
        return mutant
    name = match["function"] or f"{match['cls']}.{match['method']}"
    return f"{match['module']}.{name}"


def reviewed() -> dict[tuple[str, str, str], str]:
    """Each reviewed mutant's reason, by (function, removed, added); an entry's `added` may list several mutants
    of the same line that are equivalent for the same reason."""
    entries = tomllib.loads(REVIEWED.read_text(encoding="utf-8")).get("survivor", [])
    return {
        (e["function"], e["removed"].strip(), added.strip()): e["why"]
        for e in entries
        for added in ([e["added"]] if isinstance(e["added"], str) else e["added"])
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(MODULES), help="modules of MODULES (default: all)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not in MODULES: {', '.join(unknown)}; add them there with the tests that cover them")
    reasons = reviewed()
    unreviewed = 0
    with tempfile.TemporaryDirectory(prefix="gate-mutation-") as scratch:
        copy = Path(scratch)
        copy_repository(copy)
        for module in args.modules:
            mutants = run_module(copy, module, MODULES[module])
            killed = sum(m["status"] in CAUGHT for m in mutants.values())
            timeouts = sum(m["status"] == "timeout" for m in mutants.values())
            survivors = {name: m for name, m in mutants.items() if m["status"] not in CAUGHT}
            known = {name: reasons.get((function_of(name), *changed_lines(m["diff"]))) for name, m in survivors.items()}
            by_timeout = f" ({timeouts} by a timeout)" if timeouts else ""
            score = f"score {killed / len(mutants):.1%}"
            equivalent = sum(1 for why in known.values() if why)
            print(
                f"{module}: {killed} of {len(mutants)} mutants killed{by_timeout}, {score}; "
                f"{len(survivors)} survived, {equivalent} of them reviewed as equivalent"
            )
            for name, mutant in survivors.items():
                why = known[name]
                unreviewed += not why
                review = f"reviewed: {' '.join(why.split())}" if why else "NOT REVIEWED"
                print(f"\n  {name}: {mutant['status']}, {review}")
                print("    " + "\n    ".join(mutant["diff"].strip().splitlines()))
            print()
    print(f"{unreviewed} survivor(s) not reviewed: kill each with a test, or explain it in {REVIEWED.name}")
    return 1 if unreviewed else 0


if __name__ == "__main__":
    raise SystemExit(main())
