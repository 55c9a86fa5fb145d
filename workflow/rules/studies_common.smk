# Path patterns and input functions of the robustness studies (issue 13; rules in studies.smk).
# A study tree {R}/studies/{variant}/ mirrors the main results (data/, models/, eval/) for the files a
# variant redoes; every other input is the main results' file (ctpaper.studies.variants: data_tree,
# model_tree, stage_tree decide it from the config keys each stage declares).
# variant = base (published settings; the seed study's extra seeds) | a method-10.1 difference |
# paper_text (all of config/paper_text.yaml at once).

from ctpaper.studies import variants as V  # noqa: E402

STUDY = f"{R}/studies/{{variant}}"
S_DATA = {k: f"{STUDY}/data/{{dataset}}/{k}" for k in DATA}
S_MODEL_DIR = f"{STUDY}/models/{{dataset}}/seed{{seed}}/{{model}}"
S_EVAL_DIR = f"{STUDY}/eval/{{dataset}}/seed{{seed}}"
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
    tree = V.model_tree(config, variant, dataset, seed, model)
    return _in_tree(MODEL_PT, f"{S_MODEL_DIR}/model.pt", tree, dataset=dataset, seed=seed, model=model)


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


def study_eval_file(stage, variant, seed, dataset, family=None):
    """A stage's evaluation file of a variant at a training seed: the published settings' file
    where the stage's data, models and config keys are the same (ctpaper.studies.variants.stage_tree)."""
    pattern, study_pattern, rule = EVAL_STAGES[stage]
    tree = V.stage_tree(config, variant, rule, dataset, seed, _stage_models(stage, family), family)
    return _in_tree(pattern, study_pattern, tree, seed=seed, dataset=dataset, family=family)


def _study_prepare_input(wc):
    return prepare_data_input(wc)


def _study_train_input(wc):
    files = _study_data(wc.variant, wc.dataset)
    if wc.model != "bl" and V.variant_config(config, wc.variant)["train"]["generator"] == "revise":
        files["vae"] = VAE.format(dataset=wc.dataset)
    return files


def _study_eval_input(wc):
    return {
        **_study_data(wc.variant, wc.dataset),
        "ct": _study_model(wc.variant, wc.dataset, wc.seed, f"ct_{wc.family}"),
        "bl": _study_model(wc.variant, wc.dataset, wc.seed, "bl"),
    }


def _study_models_input(label_to_model):
    """Data + the models of ``label_to_model`` (inputs named by model directory) of a variant job."""

    def inputs(wc):
        models = {m: _study_model(wc.variant, wc.dataset, wc.seed, m) for m in label_to_model.values()}
        return {**_study_data(wc.variant, wc.dataset), **models}

    return inputs


def _seed_eval_files(stage):
    """{seed: [files of every dataset (and family)]} of the seed study (published settings)."""
    families = FAMILIES if stage == "ces" else [None]
    return {
        s: [study_eval_file(stage, V.BASE, s, d, f) for d in DATASETS for f in families] for s in STUDY_SEEDS
    }


def _variant_eval_files(stage):
    """{variant: [files of every dataset (and family)]} of the sensitivity study (base = main)."""
    families = FAMILIES if stage == "ces" else [None]
    return {
        v: [study_eval_file(stage, v, VARIANT_SEED, d, f) for d in DATASETS for f in families]
        for v in [V.BASE, *STUDY_VARIANTS]
    }


def _flat(by_key):
    return [f for files in by_key.values() for f in files]
