# Path patterns and input functions of the robustness studies (issue 13; rules in studies.smk).
# A study tree {R}/studies/{variant}/ mirrors the main results (data/, models/, eval/) for the files a
# variant redoes; every other input is the main results' file (ctpaper.studies.variants: data_tree,
# model_tree, stage_tree decide it from the config keys each stage declares). A ces evaluation a
# variant redoes only for its CT model takes the BL's rows from the main file (_reused_bl_rows).
# variant = base (published settings; the seed study's extra seeds) | a method-10.1 difference |
# paper_text (all of config/paper_text.yaml at once).
# One study_train job per variant and data set trains every model of its tree (a chunk:
# ctpaper.stack.chunk), one study_evaluate job runs every evaluation of its tree; their outputs are
# directories ({STUDY}/models/{dataset}, {STUDY}/eval/{dataset}) with the main results' layout
# inside, so a consumer takes the directory as input and the file's path as a param.

import functools

from ctpaper.settings import model_objective_family, model_settings  # noqa: E402
from ctpaper.studies import variants as V  # noqa: E402
from ctpaper.names import BL as _BL  # noqa: E402

BL_LABEL = _BL.label  # the BL's label in the ces/mmd files

STUDY = f"{R}/studies/{{variant}}"
S_DATA = {k: f"{STUDY}/data/{{dataset}}/{k}" for k in DATA}
S_MODELS = f"{STUDY}/models/{{dataset}}"  # study_train's directory
S_MODEL_PT = f"{S_MODELS}/seed{{seed}}/{{model}}/model.pt"
S_EVALS = f"{STUDY}/eval/{{dataset}}"  # study_evaluate's directory
S_EVAL_DIR = f"{S_EVALS}/seed{{seed}}"
S_CES = f"{S_EVAL_DIR}/{{family}}/ces.parquet"
S_MMD = f"{S_EVAL_DIR}/{{family}}/mmd.parquet"
S_ROBUSTNESS = f"{S_EVAL_DIR}/robustness.parquet"
S_PERFORMANCE = f"{S_EVAL_DIR}/performance.parquet"
STUDY_SEEDS = [str(s) for s in config["studies"]["seeds"]]
STUDY_VARIANTS = V.study_variants(config)
VARIANT_SEED = SEEDS[0]  # the sensitivity study varies the settings of the first training seed's models
STUDY_OUT = f"{R}/studies"
STUDY_TABLES = {n: f"{R}/tables/{n}.md" for n in ("seed_study", "paper_text")}
STUDY_FIGURES = {n: figure_files(n) for n in ("seed_study", "sensitivity")}
# the studies' values for the paper (paper_values input names; ctpaper.paper.values.write)
STUDY_VALUES = {f"study_{n}": f"{STUDY_OUT}/{n}.json" for n in ("seed_study", "sensitivity")}


def _in_tree(main_pattern, study_pattern, tree, **wc):
    """A path of the main results (tree == "main") or of a study tree."""
    if tree == "main":
        return main_pattern.format(**wc)
    return study_pattern.format(variant=tree, **wc)


def _study_data(variant, dataset):
    tree = V.data_tree(config, variant, dataset)
    return {
        k: _in_tree(DATA[f], S_DATA[f], tree, dataset=dataset)
        for k, f in (("train", "train.parquet"), ("test", "test.parquet"), ("meta", "meta.json"))
    }


def _study_model(variant, dataset, seed, model):
    """(path, input) of a variant's model file: the input is the file itself for a main model,
    else the study_train directory that holds it."""
    tree = V.model_tree(config, variant, dataset, seed, model)
    path = _in_tree(MODEL_PT, S_MODEL_PT, tree, dataset=dataset, seed=seed, model=model)
    return path, path if tree == "main" else S_MODELS.format(variant=tree, dataset=dataset)


# the evaluation stages: main results' pattern, study pattern, the stage's rule
EVAL_STAGES = {
    "ces": (CES, S_CES, "evaluate_ces"),
    "robustness": (ROBUSTNESS, S_ROBUSTNESS, "robustness"),
    "performance": (PERFORMANCE, S_PERFORMANCE, "performance"),
}


def _stage_models(stage, family):
    """The model directories an evaluation stage reads (as its rule's inputs name them)."""
    if stage == "ces":
        return [f"ct_{family}", "bl"]
    return list((ROBUSTNESS_MODELS if stage == "robustness" else PERFORMANCE_MODELS).values())


def _stage_tree(stage, variant, seed, dataset, family=None):
    stage_rule = EVAL_STAGES[stage][2]
    return V.stage_tree(config, variant, stage_rule, dataset, seed, _stage_models(stage, family), family)


def study_eval_file(stage, variant, seed, dataset, family=None):
    """(path, input) of a stage's evaluation file of a variant at a training seed: the published
    settings' file where the stage's data, models and config keys are the same
    (ctpaper.studies.variants.stage_tree); the input is that file, or the study_evaluate directory
    that holds it."""
    pattern, study_pattern, _ = EVAL_STAGES[stage]
    tree = _stage_tree(stage, variant, seed, dataset, family)
    path = _in_tree(pattern, study_pattern, tree, seed=seed, dataset=dataset, family=family)
    return path, path if tree == "main" else S_EVALS.format(variant=tree, dataset=dataset)


def _study_prepare_input(wc):
    return prepare_data_input(wc)


def _study_members(wc):
    return _members_of(wc.variant, wc.dataset)


@functools.lru_cache(maxsize=None)
def _members_of(variant, dataset):
    """The models study_train trains for a variant and data set (ctpaper.stack.chunk members,
    named seed<seed>/<model>): every model of the variant's own tree, with its complete settings
    under the variant's config, so the job's params are exactly what its models depend on."""
    cfg = V.variant_config(config, variant)
    out = []
    for seed, model in V.trained_models(config, variant, dataset, MODELS):
        settings = model_settings(cfg, dataset, model)
        objective, family = model_objective_family(model, settings)
        out.append(
            {
                "name": f"seed{seed}/{model}",
                "objective": objective,
                "family": family,
                "seed": int(seed),
                "settings": settings,
            }
        )
    return out


def _study_train_input(wc):
    files = _study_data(wc.variant, wc.dataset)
    members = _study_members(wc)
    if not members:
        raise WorkflowError(f"study variant {wc.variant} trains no model of {wc.dataset}")
    if any(m["objective"] != "vanilla" and m["settings"]["generator"] == "revise" for m in members):
        files["vae"] = VAE.format(dataset=wc.dataset)
    return files


def _study_tasks(wc):
    return _tasks_of(wc.variant, wc.dataset)


@functools.lru_cache(maxsize=None)
def _tasks_of(variant, dataset):
    """The evaluations study_evaluate runs for a variant and data set: every stage file of the
    variant's seeds that lies in its own tree, with the model files it reads and the files it writes."""
    tasks = []
    for seed in V.variant_seeds(config, variant):
        stages = [("ces", f) for f in FAMILIES] + [("robustness", None), ("performance", None)]
        for stage, family in stages:
            if _stage_tree(stage, variant, seed, dataset, family) != variant:
                continue
            fmt = dict(variant=variant, dataset=dataset, seed=seed, family=family)
            reuse = {}
            if stage == "ces":
                models = {"ct": f"ct_{family}", "bl": "bl"}
                out = {"ces": S_CES.format(**fmt), "mmd": S_MMD.format(**fmt)}
                reuse = _reused_bl_rows(variant, dataset, seed, family)
            else:
                models = ROBUSTNESS_MODELS if stage == "robustness" else PERFORMANCE_MODELS
                out = {stage: (S_ROBUSTNESS if stage == "robustness" else S_PERFORMANCE).format(**fmt)}
            paths = {k: _study_model(variant, dataset, seed, m)[0] for k, m in models.items()}
            tasks.append(
                {
                    "stage": stage,
                    "seed": int(seed),
                    "family": family,
                    "models": paths,
                    "out": out,
                    "reuse": reuse,
                }
            )
    return tasks


@functools.lru_cache(maxsize=None)
def _bl_rows_source(variant, dataset, seed, family):
    """(ces path, mmd path, input) of the file whose BL rows this ces evaluation of a variant can
    take, or None. A variant that retrains only the CT model leaves the BL's data, model file and
    the evaluation's config keys at the published ones (stage_tree of the BL alone is not the
    variant's), so the BL's rows are the main file's; study_evaluate then scores the CT alone
    (ctpaper.evaluation.protocol: a model's rows do not depend on the other model)."""
    tree = V.stage_tree(config, variant, "evaluate_ces", dataset, seed, ["bl"], family)
    if tree == variant:
        return None
    wc = dict(dataset=dataset, seed=seed, family=family)
    ces, mmd = _in_tree(CES, S_CES, tree, **wc), _in_tree(MMD, S_MMD, tree, **wc)
    return ces, mmd, (ces, mmd) if tree == "main" else (S_EVALS.format(variant=tree, dataset=dataset),)


def _reused_bl_rows(variant, dataset, seed, family):
    """A ces task's ``reuse``: {"BL": [ces path, mmd path]} (_bl_rows_source), else {}."""
    source = _bl_rows_source(variant, dataset, str(seed), family)
    return {BL_LABEL: list(source[:2])} if source else {}


def _reused_inputs(variant, dataset, tasks):
    """The inputs behind the reused rows of ``tasks``: the files, or the study_evaluate directories
    that hold them."""
    sources = (_bl_rows_source(variant, dataset, str(t["seed"]), t["family"]) for t in tasks if t["reuse"])
    return sorted({i for source in sources for i in source[2]})


def _study_eval_input(wc):
    tasks = _study_tasks(wc)
    if not tasks:
        raise WorkflowError(f"study variant {wc.variant} evaluates nothing of {wc.dataset}")
    models = sorted(
        {
            _study_model(wc.variant, wc.dataset, str(t["seed"]), m)[1]
            for t in tasks
            for m in _stage_models(t["stage"], t["family"])
        }
    )
    return {
        **_study_data(wc.variant, wc.dataset),
        "models": models,
        "reused": _reused_inputs(wc.variant, wc.dataset, tasks),
    }


def _study_res(per_kind, count):
    """A resource of a study job: per-item amount of the data set's kind times its items + 5."""
    return lambda wc: 5 + per_kind[dataset_kind(wc.dataset)] * len(count(wc))


def _seed_eval_files(stage):
    """{seed: [(path, input) of every dataset (and family)]} of the seed study (published settings)."""
    families = FAMILIES if stage == "ces" else [None]
    return {
        s: [study_eval_file(stage, V.BASE, s, d, f) for d in DATASETS for f in families] for s in STUDY_SEEDS
    }


def _variant_eval_files(stage):
    """{variant: [(path, input) of every dataset (and family)]} of the sensitivity study (base = main)."""
    families = FAMILIES if stage == "ces" else [None]
    return {
        v: [study_eval_file(stage, v, VARIANT_SEED, d, f) for d in DATASETS for f in families]
        for v in [V.BASE, *STUDY_VARIANTS]
    }


def _paths(by_key):
    """{key: [paths]} of {key: [(path, input)]}."""
    return {k: [p for p, _ in files] for k, files in by_key.items()}


def _inputs(*by_keys):
    """The distinct inputs (files and study directories) behind {key: [(path, input)]} maps."""
    return sorted({i for by_key in by_keys for files in by_key.values() for _, i in files})


def _flat(by_key):
    return [f for files in by_key.values() for f in files]
