"""Rule study_evaluate: every evaluation of a study variant's tree for one data set, in one process
(params.tasks: evaluate_ces per seed and family, robustness and performance per seed; the stage
functions of the main rules, under the variant's config). A ces task's ``reuse`` names the files
whose BL rows it takes instead of searching the BL again."""

from pathlib import Path

from ctpaper.evaluation.performance import run_performance
from ctpaper.evaluation.protocol import run_evaluate_ces
from ctpaper.evaluation.robustness import run_robustness
from ctpaper.runtime import progress, rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    data_dir, dataset = Path(smk.input.meta).parent, smk.wildcards.dataset
    for task in progress(smk.params.tasks, "evaluations"):
        stage, seed, models, out = task["stage"], int(task["seed"]), task["models"], task["out"]
        log.info("%s seed %d%s", stage, seed, f" {task['family']}" if task["family"] else "")
        if stage == "ces":
            run_evaluate_ces(data_dir, models["ct"], models["bl"], smk.config, dataset, task["family"],
                             seed, out["ces"], out["mmd"], reuse=task["reuse"])
        elif stage == "robustness":
            run_robustness(data_dir, models, smk.config, dataset, seed, out["robustness"])
        elif stage == "performance":
            run_performance(data_dir, models, dataset, seed, out["performance"])
        else:
            raise ValueError(f"unknown study evaluation stage {stage!r}")
