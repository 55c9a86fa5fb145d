# Data stage (method section 2): verified raw files -> prepared pool/test per dataset.
#   fetch_raw     one job per real dataset: find a verified copy of every raw file in the project's
#                 raw dir, the mirror (paths.raw_mirror or env CTPAPER_RAW_MIRROR) or by download.
#   prepare_data  one job per dataset: train.parquet (pool incl. is_val), test.parquet, meta.json.
# fetch_raw is a localrule: seconds from a mirror, and cluster nodes often have no internet.
# Synthetic datasets have no raw files, so prepare_data takes the manifest only for real datasets.


rule fetch_raw:
    output:
        RAW_MANIFEST,
    log:
        f"{LOGS}/fetch_raw/{{dataset}}.log",
    benchmark:
        f"{BENCH}/fetch_raw/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(REAL_DATASETS) or "(?!)",
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(500),  # measured: 225 MB peak RSS (mostly the torch import of rule_context)
        runtime=retried(15),  # minutes; seconds when the files are local, a download is ~25 MB
    params:
        config_reads=reads("fetch_raw"),
    script:
        "../scripts/fetch_raw.py"


rule prepare_data:
    input:
        unpack(prepare_data_input),
        code=code(
            "data/prepare.py",
            "data/synthetic.py",
            "data/julia_rng.py",
            "data/mljbase.py",
            "data/ziggurat_tables.json",
            "data/tabular.py",
            "data/mnist.py",
            "data/splits.py",
            "data/registry.py",
        ),
    output:
        train=DATA["train.parquet"],
        test=DATA["test.parquet"],
        meta=DATA["meta.json"],
    log:
        f"{LOGS}/prepare_data/{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare_data/{{dataset}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        # measured peak RSS: mnist 460 MB, tabular <= 380 MB, synthetic 310 MB; a few seconds each
        mem_mb=retried(lambda wc: 1000 if dataset_kind(wc.dataset) == "image" else 800),
        runtime=retried(5),
    params:
        config_reads=reads("prepare_data"),
    script:
        "../scripts/prepare_data.py"
