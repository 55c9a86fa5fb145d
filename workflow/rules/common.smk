# Config validation, path patterns and target lists shared by all rule files.

import os
import sys

# The project root (this file is workflow/rules/common.smk). Not workflow.basedir: when the workflow
# is used as a module, that is the directory of the user's Snakefile.
PROJECT_DIR = os.path.abspath(os.path.join(workflow.current_basedir, "..", ".."))
SRC_DIR = os.path.join(PROJECT_DIR, "src")
sys.path.insert(0, SRC_DIR)
# Jobs import the library from here too: under --use-conda (workflow/envs/ does not install it) and
# when the workflow is used as a module from another directory.
# (set, not required, so no envvars: directive)
_pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != SRC_DIR]
os.environ.update(PYTHONPATH=os.pathsep.join([SRC_DIR, *_pythonpath]))

from ctpaper.config import (  # noqa: E402
    ConfigError,
    dataset_kind,
    validate as validate_config,
)
from ctpaper.config_reads import reads_hash  # noqa: E402
from ctpaper import names  # noqa: E402
from ctpaper.preflight import describe_workflow_error  # noqa: E402
from ctpaper.studies.variants import overlay_hash, variant_config  # noqa: E402

# Snakemake's script directive does not quote the interpreter's or the script's path, so a path
# with whitespace makes every job fail with exit code 127; refuse it up front instead.
for _what, _path in (
    ("the checkout", workflow.basedir),
    ("the working directory", os.getcwd()),
    ("the Python interpreter", sys.executable),
):
    if any(ch.isspace() for ch in str(_path)):
        raise WorkflowError(
            f"{_what} path {str(_path)!r} contains whitespace, which Snakemake's "
            "script jobs cannot run from: move or clone it to a path without spaces"
        )

try:
    validate_config(config)
except ConfigError as err:
    _sources = (workflow.configfiles, workflow.overwrite_configfiles, workflow.config_settings.config)
    raise WorkflowError(describe_workflow_error(err, *_sources)) from None

R = config["paths"]["results"]
DATASETS = list(config["datasets"])
FAMILIES = list(config["families"])
SEEDS = [str(s) for s in config["train"]["seeds"]]
FIG_SEED = SEEDS[0]  # the MNIST figures (2, 4, 5) use the first training seed's models
# bl serves both families; ct_<family> is counterfactual training under that family's mutability.
MODELS = [names.BL.key] + [names.ct_role(f).key for f in FAMILIES]
REAL_DATASETS = [d for d in DATASETS if dataset_kind(d) != "synthetic"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    family="|".join(FAMILIES),
    model="|".join(MODELS),
    seed=r"\d+",


# ---- path patterns: the files between stages -------------------------------------------------
RAW_MANIFEST = f"{R}/raw/{{dataset}}/manifest.json"
DATA_DIR = f"{R}/data/{{dataset}}"
DATA = {k: f"{DATA_DIR}/{k}" for k in ("train.parquet", "test.parquet", "meta.json")}
# the prepared dataset as rule inputs under identifier names (scripts read the directory of `meta`)
DATA_IN = {"train": DATA["train.parquet"], "test": DATA["test.parquet"], "meta": DATA["meta.json"]}
MODEL_DIR = f"{R}/models/{{dataset}}/seed{{seed}}/{{model}}"
MODEL_PT = f"{MODEL_DIR}/model.pt"
MODEL_LOG = f"{MODEL_DIR}/log.parquet"
VAE = f"{R}/models/{{dataset}}/vae/model.pt"
EVAL_DIR = f"{R}/eval/{{dataset}}/seed{{seed}}"
CES = f"{EVAL_DIR}/{{family}}/ces.parquet"
MMD = f"{EVAL_DIR}/{{family}}/mmd.parquet"
ROBUSTNESS = f"{EVAL_DIR}/robustness.parquet"
PERFORMANCE = f"{EVAL_DIR}/performance.parquet"
IG_SUMMARY = f"{EVAL_DIR}/ig_summary.parquet"
IG_MAPS = f"{R}/eval/mnist/seed{{seed}}/ig_maps.parquet"
TABLE = f"{R}/tables/{{name}}"
FIGURE = f"{R}/figures/{{name}}"
LOGS = f"{R}/logs"
BENCH = f"{R}/benchmarks"

TABLE_NAMES = ["table1", "table2", "table3", "performance", "comparison"]
# Figures 2, 4 and 5 show MNIST counterfactuals; they exist only when MNIST is configured.
MNIST_FIGURES = ["fig2", "fig4", "fig5"]
FIGURE_NAMES = ["fig1", "fig3", "maturity"] + (MNIST_FIGURES if "mnist" in DATASETS else [])


def data_files(dataset):
    return [p.format(dataset=dataset) for p in DATA.values()]


def model_files(dataset, seed, model):
    return [p.format(dataset=dataset, seed=seed, model=model) for p in (MODEL_PT, MODEL_LOG)]


def figure_files(name):
    return [f"{FIGURE}.{ext}".format(name=name) for ext in ("png", "pdf")]


def table_files(name):
    return [f"{TABLE}.{ext}".format(name=name) for ext in ("csv", "md")]


DATA_FILES = [f for d in DATASETS for f in data_files(d)]
MODEL_FILES = [f for d in DATASETS for s in SEEDS for m in MODELS for f in model_files(d, s, m)]
EVAL_FILES = (
    [CES.format(dataset=d, seed=s, family=f) for d in DATASETS for s in SEEDS for f in FAMILIES]
    + [MMD.format(dataset=d, seed=s, family=f) for d in DATASETS for s in SEEDS for f in FAMILIES]
    + [ROBUSTNESS.format(dataset=d, seed=s) for d in DATASETS for s in SEEDS]
    + [PERFORMANCE.format(dataset=d, seed=s) for d in DATASETS for s in SEEDS]
)
TABLE_FILES = [f for n in TABLE_NAMES for f in table_files(n)]
FIGURE_FILES = [f for n in FIGURE_NAMES for f in figure_files(n)]
PAPER_FILES = [f"{R}/paper/paper.html", f"{R}/paper/paper.pdf"]


def reads(rule):
    """The params value of ``rule``: a hash of the config keys its jobs read (declared once, in
    src/ctpaper/config_reads.py), so a config change reruns exactly the jobs that read it."""
    return (
        lambda wildcards: f"{reads_hash(_job_config(wildcards), rule, wildcards)}{_variant_hash(wildcards)}"
    )


def _variant_hash(wildcards):
    """A study variant job's overlay values (ctpaper.studies.variants.overlay_hash), else ''."""
    return f"-{overlay_hash(wildcards.variant)}" if "variant" in dict(wildcards) else ""


def _job_config(wildcards):
    """The config a job runs with: a study variant's (ctpaper.studies.variants) where the job has a
    ``variant`` wildcard."""
    return variant_config(config, wildcards.variant) if "variant" in dict(wildcards) else config


def project_path(*parts):
    """A path in the checkout, relative to the working directory: inputs are recorded by path, so
    absolute ones would make a copied or moved checkout rerun every job."""
    return os.path.relpath(os.path.join(PROJECT_DIR, *parts))


def code(*modules):
    """The library modules (paths under src/ctpaper/) a rule runs; a package given as "name/" stands
    for all its modules. They are inputs, so editing a figure's or a stage's module reruns that rule
    and what depends on it (shared infrastructure such as config.py and runtime.py is left out on
    purpose)."""
    out = []
    for m in modules:
        if m.endswith("/"):
            pkg = project_path("src", "ctpaper", m)
            out += sorted(os.path.join(pkg, f) for f in os.listdir(pkg) if f.endswith(".py"))
        else:
            out.append(project_path("src", "ctpaper", m))
    return out


def producers(paths):
    """For each output path: the rule (among those defined so far) whose output pattern makes it and
    the library modules that rule runs (its ``code`` inputs, relative to the repository). The paper
    prints this under every figure and table, so it is read from the DAG, never typed."""
    out = {}
    for path in paths:
        made_by = [r for r in workflow.rules if r.is_producer(path)]
        if len(made_by) != 1:
            raise WorkflowError(f"{path}: expected one producing rule, found {[r.name for r in made_by]}")
        modules = getattr(made_by[0].input, "code", [])
        out[path] = {
            "rule": made_by[0].name,
            "modules": [os.path.relpath(os.path.abspath(m), PROJECT_DIR) for m in modules],
        }
    return out


# ---- input functions and resources used by the rule files ------------------------------------
# (kept out of the rule files, since `snakemake --lint` objects to functions mixed with rules)


# every rule: resources are declared once, in the rules (profiles/slurm only groups the jobs)
def retried(value):
    """A mem_mb or runtime request (a number, or a function of the wildcards) times the attempt: a
    job retried after it was killed for time or memory (profiles/slurm: restart-times) asks for
    twice as much. Locally (no retries) the request is the value itself."""
    if callable(value):
        return lambda wildcards, attempt: value(wildcards) * attempt
    return lambda wildcards, attempt: value * attempt


# report.smk
def benchmark_dirs(wildcards):
    """{rule: the directory of its benchmark files} for every rule that writes them (the
    provenance rule passes it on, so the library never derives a rule name from a path)."""
    return {r.name: os.path.dirname(str(r.benchmark)) for r in workflow.rules if r.benchmark}


# data.smk
def prepare_data_input(wildcards):
    if dataset_kind(wildcards.dataset) == "synthetic":
        return {}
    return {"manifest": RAW_MANIFEST.format(dataset=wildcards.dataset)}


# train.smk
def _train_res(key):
    return lambda wc: TRAIN_RESOURCES[dataset_kind(wc.dataset)][key]


def _train_inputs(wildcards):
    files = {k: v.format(dataset=wildcards.dataset) for k, v in DATA_IN.items()}
    if wildcards.model != "bl" and config["train"]["generator"] == "revise":
        files["vae"] = VAE.format(dataset=wildcards.dataset)
    return files


# evaluate.smk
def _model_file(model):
    """The model file pattern with the model fixed (other wildcards left for the rule)."""
    return MODEL_PT.replace("{model}", model)


def _model_files(label_to_model, dataset=None):
    """Model-file inputs named by model directory (bl, ct_free, ...) for a {label: model} map of
    the library; the scripts pass them back as {label: file}."""
    files = {m: _model_file(m) for m in label_to_model.values()}
    return {m: f.replace("{dataset}", dataset) for m, f in files.items()} if dataset else files


def _mem_mb(small, mnist):
    """mem_mb by dataset: MNIST's 784 features need more (peak RSS measured in the benchmarks)."""
    return lambda wc: mnist if dataset_kind(wc.dataset) == "image" else small


def _ig_summary_maps(wildcards):
    """MNIST's summary also reports the class-average-map statistic of Figure 2."""
    return {"maps": IG_MAPS.format(seed=wildcards.seed)} if wildcards.dataset == "mnist" else {}


# report.smk
def _fig_model(dataset, model, seed=FIG_SEED):
    return MODEL_PT.format(dataset=dataset, seed=seed, model=model)


def _all(pattern, **fixed):
    """Every configured dataset x seed (x family) expansion of an evaluation path pattern."""
    out = []
    for d in DATASETS:
        for s in SEEDS:
            if "{family}" in pattern:
                out += [pattern.format(dataset=d, seed=s, family=f) for f in FAMILIES]
            else:
                out.append(pattern.format(dataset=d, seed=s))
    return out
