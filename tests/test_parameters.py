"""Every chapter parameter has a rule, every profile follows it, and bad values are refused
under the notebook's names before any work."""

import math

import numpy as np
import pytest

from netshrink.book import chapters, parameters
from netshrink.book.report import PROFILES


@pytest.mark.parametrize("chapter", chapters.CHAPTERS.values(), ids=lambda c: c.name)
def test_every_parameter_has_a_rule_and_every_profile_follows_it(chapter):
    assert set(chapter.parameters("quick")) <= set(parameters.RULES)
    for profile in PROFILES:
        values = chapter.parameters(profile)
        assert parameters.check(chapter.notebook, values, values) == values


BAD = [
    ("mlp_epochs", -1, r"mlp_epochs=-1 is out of range; allowed: an integer >= 0"),
    ("mlp_epochs", 2.5, r"mlp_epochs=2.5 must be an integer >= 0"),
    ("mlp_epochs", "3", r"mlp_epochs='3' must be an integer >= 0"),
    ("mlp_epochs", True, r"mlp_epochs=True must be an integer"),
    ("mlp_epochs", None, r"mlp_epochs=None is not allowed"),
    ("mnist_train_size", 0, r"mnist_train_size=0 is out of range; allowed: an integer >= 1, or None"),
    ("val_size", -5, r"val_size=-5 is out of range"),
    ("seed", -1, r"seed=-1 is out of range"),
    ("profile", "fast", r"profile='fast' is not known; allowed values: smoke, quick, full"),
    ("device", "tpu", r"device='tpu' is not known; allowed values: auto, cpu, cuda"),
    ("precision", "fp16", r"precision='fp16' is not known; allowed values: auto, float32, bfloat16"),
]
BAD_OTHER = [
    ("vgg_case_study", "lr", math.inf, r"lr=inf must be a finite number > 0"),
    ("vgg_case_study", "lr", math.nan, r"lr=nan must be a finite number > 0"),
    ("vgg_case_study", "lr", 0, r"lr=0.0 is out of range; allowed: a finite number > 0"),
    ("vgg_case_study", "width", 1.5, r"width=1.5 is out of range"),
    ("vgg_case_study", "prune_tol", math.nan, r"prune_tol=nan must be a finite number >= 0"),
    ("vgg_case_study", "tucker_rule", "svd", r"tucker_rule='svd' is not known; allowed values: vbmf"),
    ("vgg_case_study", "tucker_rule", 1.5, r"tucker_rule=1.5 is out of range"),
    ("vgg_case_study", "sensitivity_rates", [0.5, 1.2], r"sensitivity_rates\[1\]=1.2 is out of range"),
    ("vgg_case_study", "sensitivity_rates", "0.5", r"sensitivity_rates='0.5' must be a list of floats"),
    ("vgg_case_study", "sensitivity_rates", [], r"sensitivity_rates=\[\] must hold at least 1 item"),
    ("random_pruning", "n_values", [1, -2], r"n_values\[1\]=-2 is out of range"),
    ("node_importance", "cnn_layers", ["conv9"], r"cnn_layers\[0\]='conv9' is not known"),
    ("node_importance", "cnn_dataset", "svhn", r"cnn_dataset='svhn' is not known; allowed values: mnist, "),
    ("tensor_decomposition", "methods", ["svd"], r"methods\[0\]='svd' is not known; allowed values: tucker2"),
    ("tensor_decomposition", "ks", [0, 4], r"ks\[0\]=0 is out of range; allowed: an integer >= 1 and <= 8"),
    ("tensor_decomposition", "lenet_plan", [1], r"lenet_plan=\[1\] must be a mapping"),
    ("vgg_case_study", "tucker_rule", 1.0, r"tucker_rule=1.0 is out of range; allowed: 'vbmf' or an energy"),
    ("vgg_case_study", "schedule", "step", r"schedule='step' is not known; allowed values: none, cosine"),
    ("vgg_case_study", "label_smoothing", 1.0, r"label_smoothing=1.0 is out of range"),
    ("random_pruning", "seed", 2**80, r"seed=1208925819614629174706176 is out of range"),
    ("random_pruning", "n_values", [1, 200], r"n_values=\[1, 200\]: cannot remove 200 of the 128 hidden"),
    ("random_pruning", "shrink_n_values", [129], r"shrink_n_values=\[129\]: cannot remove 129 of the 128"),
    ("random_pruning", "n_trials", 10**9, r"n_trials=1,000,000,000 needs about 1,907.3 GiB for its masks"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_bad_values_are_refused_naming_the_notebook_and_parameter(name, value, message):
    values = {**chapters.BASELINES.parameters("smoke"), name: value}
    with pytest.raises(ValueError, match=r"^chapters/01_baselines.ipynb: " + message):
        parameters.check(chapters.BASELINES.notebook, values, values)


@pytest.mark.parametrize(("chapter", "name", "value", "message"), BAD_OTHER)
def test_bad_values_of_every_kind_are_refused(chapter, name, value, message):
    c = chapters.CHAPTERS[chapter]
    values = {**c.parameters("smoke"), name: value}
    with pytest.raises(ValueError, match=message):
        parameters.check(c.notebook, values, values)


def test_numpy_numbers_are_converted_and_energy_fractions_kept():
    c = chapters.VGG_CASE_STUDY
    values = {**c.parameters("smoke"), "epochs": np.int64(2), "lr": np.float32(0.5), "tucker_rule": 0.9,
              "sensitivity_rates": np.array([0.25, 0.5])}  # fmt: skip
    out = parameters.check(c.notebook, values, c.parameters("smoke"))
    assert type(out["epochs"]) is int and out["epochs"] == 2
    assert type(out["lr"]) is float and out["sensitivity_rates"] == [0.25, 0.5] and out["tucker_rule"] == 0.9


def test_a_chapter_refuses_a_misspelt_parameter_papermill_only_warns_about(results_dir):
    namespace = {**chapters.BASELINES.parameters("smoke"), "mlp_epoch": 1, "np": np, "_private": 3}
    with pytest.raises(ValueError, match=r"has no parameter 'mlp_epoch' \(did you mean 'mlp_epochs'\?\)"):
        chapters.BASELINES.start(namespace, display=False)
    assert not results_dir.exists(), "nothing is written before the parameters are checked"


def test_a_chapter_writes_converted_values_back_into_the_notebook(results_dir):
    namespace = {**chapters.BASELINES.parameters("smoke"), "mlp_epochs": np.int64(2), "device": "cpu"}
    run = chapters.BASELINES.start(namespace, display=False)
    assert type(namespace["mlp_epochs"]) is int and run.params["mlp_epochs"] == 2


def test_quick_tensor_decomposition_reduces_the_baselines_cnn_from_the_cache():
    """The quick profile trains draft 003's CNN with max-pooling and augmentation once: Baselines'
    B-F7 run and Tensor decomposition's network have the same configuration, so the same key."""
    from netshrink.experiments import baselines
    from netshrink.experiments import cifar_decomposition as cd

    base = chapters.BASELINES.parameters("quick")
    settings = {k: v for k, v in base.items() if k not in {"profile", "device", "precision"}}
    runs = baselines.baseline_runs(**settings)
    b_f7 = next(r.config for r in runs if r.key == "cnn_pool_aug")
    dec = chapters.TENSOR_DECOMPOSITION.parameters("quick")
    cifar_data = {"val_size": dec["val_size"], "train_size": dec["cifar_train_size"],
                  "test_size": dec["cifar_test_size"], "seed": dec["seed"]}  # fmt: skip
    ours = cd.cifar_config(epochs=dec["cifar_epochs"], seed=dec["seed"], data_kwargs=cifar_data)
    assert ours.key() == b_f7.key()


def test_the_vgg_rules_allow_what_the_chapter_does():
    from netshrink.experiments import vgg_case_study as vc

    assert parameters.RULES["tucker_layers"].choices == vc.TUCKER_LAYERS
    c = chapters.VGG_CASE_STUDY
    for name, value in [("target_speedup", 0.5), ("tucker_layers", "some"), ("channel_multiple", 0)]:
        values = {**c.parameters("smoke"), name: value}
        with pytest.raises(ValueError, match=rf"^chapters/05_vgg_case_study.ipynb: {name}="):
            parameters.check(c.notebook, values, values)
