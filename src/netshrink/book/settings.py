"""Every chapter's settings beside the drafts' words: what the draft says (quoted, with the draft
file), what we ran (read from the run's parameters where it is one), whose choice it is and why.

`SETTINGS` holds one table per chapter (declared rows, `Setting`); `settings_section` renders a
chapter's table as MyST for its page, filling `ours` from the parameters of the run the page
shows. A row whose `ours` names a parameter the run does not have raises KeyError naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["DRAFTS", "SETTINGS", "Setting", "Whose", "settings_section"]

Whose = Literal["draft", "ours", "draft's, read by us"]
WHOSE: tuple[str, ...] = ("draft", "ours", "draft's, read by us")

DRAFTS = {
    "000": "000_55ce58ed2b51785e.txt (DTU slides, week 2)",
    "001": "001_72e6b0a06a5c5c6b.txt (DTU slides, week 5)",
    "002": "002_e8850981b7e6fede.txt (DTU slides, week 6)",
    "003": "003_ba967089f1d3be1a.txt (CIFAR-10 course report)",
    "004": "004_7369e26943b8083b.txt (Oslo thesis draft)",
}


@dataclass(frozen=True)
class Setting:
    """One setting: `draft` the draft's own words ("" where it says nothing), `source` the draft
    ("004, 3.1.1"), `ours` a format over the run's parameters (`"{epochs} epochs"`) or a function
    of them, `whose` the choice's owner, `why` the reason for ours."""

    name: str
    draft: str
    source: str
    ours: str | Callable[[Mapping[str, Any]], str]
    whose: Whose
    why: str

    def __post_init__(self) -> None:
        if self.whose not in WHOSE:
            raise ValueError(f"whose={self.whose!r} is not known; allowed values: {', '.join(WHOSE)}")

    def ours_text(self, params: Mapping[str, Any]) -> str:
        if callable(self.ours):
            return self.ours(params)
        return self.ours.format_map(_Strict(params))


class _Strict(dict):
    def __missing__(self, key: str) -> Any:
        raise KeyError(f"setting needs the run's parameter {key!r}, which the run does not have")


def _split(params: Mapping[str, Any], size: str = "train_size", total: int = 60_000) -> str:
    """The training images a run uses: `size` of them, or all but the validation split."""
    n = params[size] if params[size] is not None else total - params["val_size"]
    return f"{n:,} training images, {params['val_size']:,} held out for validation"


def _mnist(params: Mapping[str, Any]) -> str:
    return _split(params, "mnist_train_size")


def _cifar(params: Mapping[str, Any]) -> str:
    return _split(params, "cifar_train_size", 50_000) + "; the JPEG copy (quality 75)"


def _input(params: Mapping[str, Any]) -> str:
    return _split(params, "input_train_size")


def _train(params: Mapping[str, Any]) -> str:
    return _split(params)


def _vgg(params: Mapping[str, Any]) -> str:
    return "CIFAR-10 (JPEG copy), " + _split(params, "train_size", 50_000)


S = Setting
_SEED = S(
    "seed",
    "",
    "all drafts",
    "{seed}, one training run per configuration unless the table says otherwise",
    "ours",
    "the drafts name no seeds",
)

# fmt: off
SETTINGS: dict[str, list[Setting]] = {
    "baselines": [
        S("MLP",
          "2 hidden layers of each 512 neurons; Dropout after each layer (p = 0.4); SGD optimizer with "
          "0.01 learning rate and 0.9 momentum", "000, week 2", "the same", "draft", "stated"),
        S("MLP epochs", "", "000", "{mlp_epochs}", "ours", "the slides give no epochs; enough to converge"),
        S("one conv layer",
          "32 filters, 5 size, 1 stride, 2 padding; Dense layer of 100 neurons; Adam optimizer with "
          "0.0001 learning rate and 0.1 weight decay", "000, week 2",
          "the same; \"weight decay\" trained both ways: AdamW's decoupled decay and Adam's L2 penalty",
          "draft's, read by us", "PyTorch has two meanings of weight decay and the slides do not say which"),
        S("one conv layer: epochs", "", "000", "{one_conv_epochs}", "ours", "the slides give none"),
        S("two conv layers",
          "2 convolutional layers of each 32 filters; 2 x 2 max-pooling after each; Adam optimizer with"
          " 0.001 LR and 0.1 weight decay", "000, week 2",
          "the same, 5x5 kernels with padding 2 and a dense layer of 100 (ours: the slides give "
          "neither); weight decay both ways", "draft's, read by us", "as for the one-conv network"),
        S("two conv layers: batch and epochs", "Bigger batch size of 1000 samples each", "000, week 2",
          "batch 1,000; {two_conv_epochs} epochs", "draft's, read by us",
          "the batch is the slides'; the epochs ours (none given)"),
        S("batch size of the MLP and the one-conv network", "", "000", "64", "ours", "the slides give none"),
        S("MNIST data", "", "000", _mnist, "ours",
          "the drafts do not say which images train; ours keep a validation split for every decision, "
          "so the test set only reports"),
        S("the CIFAR-10 CNN's layers",
          "CIFAR-10 dataset is used for the classification task. [...] The task is to train a Neural "
          "network", "003, 1.1",
          "four 3x3 convolutions (32, 32, 64, 64 channels) and a dense layer of 512; without pooling "
          "the second convolution of each pair has stride 2, with pooling a 2x2 max-pool follows it", "ours",
          "the report names no layer sizes and no optimiser; this is the book's network, the same in "
          "Baselines and Tensor decomposition"),
        S("CIFAR-10 optimiser and learning rate", "Plot for step 4, Lr = 0.001", "003, Figure 1",
          "Adam, learning rate 0.001, batch 64", "draft's, read by us",
          "the learning rate is the report's; it names no optimiser or batch size: Adam and 64 are ours"),
        S("CIFAR-10 epochs",
          "the model saturates in learning after 15 epochs. The final test accuracy is 59%", "003, 1.4",
          "{cifar_epochs}", "draft", "stated"),
        S("too large learning rates",
          "learning rates 0.1 and 1 are too large for the model to learn anything", "003, 1.4",
          "0.1 and 1, {cifar_lr_epochs} epochs each", "draft's, read by us",
          "the rates are the report's, the epochs ours: a few show that the net does not train"),
        S("max-pooling", "Plot for step 6, Lr = 0.001 and Maxpooling", "003, Figure 3",
          "2x2 max-pool after the second and fourth convolution, {cifar_epochs} epochs",
          "draft's, read by us", "the report adds pooling without saying where"),
        S("data augmentation", "The test accuracy does not saturate even after 50 epochs", "003, 1.4",
          "random crops (4-pixel padding) and horizontal flips, {cifar_aug_epochs} epochs",
          "draft's, read by us", "the epochs are the report's; it does not name its transforms"),
        S("CIFAR-10 data", "colored 50000 train images and 10000 test images", "003, 1.1", _cifar, "ours",
          "a validation split as everywhere; the JPEG copy is the only CIFAR-10 on the build machine"),
        _SEED,
    ],
    "random_pruning": [
        S("network", "Artificial Neural Network with single hidden layer of 128 nodes", "004, 3.1.1",
          "one hidden layer of {hidden}", "draft", "stated"),
        S("training",
          "using ADAM as optimizer with a learning rate of 0.001 trained on 5 epochs, batch size of 32",
          "004, 3.1.1", "Adam 0.001, {epochs} epochs, batch {batch_size}", "draft", "stated"),
        S("MNIST and Fashion-MNIST data", "", "004", _train, "ours",
          "the draft does not say which images train"),
        S("Fashion-MNIST network", "Trial text", "004, 3.1.2", "the MNIST recipe", "ours",
          "section 3.1.2 has tables (3.4, 3.5) but no text and no recipe for Fashion-MNIST"),
        S("nodes removed", "Table 3.1 columns 1 2 4 8 16 32 64", "004, Table 3.1", "{n_values}", "draft",
          "stated"),
        S("random removal",
          "to_drop <- choose n from to_consider without replacement [...] weights[0][:,i] = 0",
          "004, Algorithm 1",
          "n nodes drawn without replacement, their weights and bias zeroed (a keep-mask)", "draft",
          "stated"),
        S("trials", "", "004", "{n_trials} random draws per network and n", "ours",
          "the draft does not say"),
        S("networks", "Final Accuracy and Loss on test set are: Loss: 0.0879 Accuracy: 0.9724", "004, 3.1.1",
          "{n_networks} networks per data set (seeds {seed} on)", "ours",
          "the draft reports one network; more show how much of the spread is the network's"),
        S("Algorithm 2: steps", "n is the number of nodes removed at each step",
          "004, Algorithm 2 and Table 3.3", "n in {shrink_n_values}", "draft", "stated"),
        S("Algorithm 2, draft reading: decision",
          "x_train, y_train [...] best_loss <- loss; best_acc <- acc", "004, Algorithm 2",
          "on the training images: a removal stays if the loss does not rise and the accuracy does "
          "not fall", "draft's, read by us",
          "the pseudo-code is truncated after its set-up; the chapter states the reading"),
        S("Algorithm 2, validation-loss reading: decision", "", "this book",
          "on the {val_size} validation images: a removal stays if the loss does not rise", "ours",
          "a second reading beside the draft's, not the draft's rule"),
        S("Algorithm 2: candidates", "to_test is an array containing the nodes to consider in the random "
          "choosing", "004, Algorithm 2",
          "each node is drawn at most once; a run ends when fewer than n remain", "draft's, read by us",
          "the draft names to_test but its loop is lost: drawing each node once is our reading"),
        S("Algorithm 2: networks", "", "004, Tables 3.3 and 3.6",
          "{shrink_networks} networks per data set, the mean over them with a 95 % interval", "ours",
          "the draft reports one network"),
        S("Algorithm 2: runs", "8: mean 2.4000, std 3.7613", "004, Table 3.3",
          "{shrink_runs} runs per n and network",
          "draft's, read by us",
          "the draft does not print its runs; its n = 8 columns (mean 2.4 and 5.6, sd 3.7613) fit only "
          "20 runs of 0 or 8 nodes"),
        S("Table 3.6's data set", "Table 3.6: Long", "004, after section 3.2's heading",
          "Fashion-MNIST, beside our R-T6", "draft's, read by us",
          "the table is printed after section 3.2's heading with the caption \"Long\"; its columns and "
          "values are Algorithm 2's (n = 1, 2, 3, 4, 8): that it is Fashion-MNIST is our reading"),
        _SEED,
    ],
    "node_importance": [
        S("network",
          "single hidden layer of 128 nodes [...] ADAM [...] 0.001 [...] 5 epochs, batch size of 32",
          "004, 3.1.1", "one hidden layer of {hidden}, Adam 0.001, {epochs} epochs, batch {batch_size}",
          "draft", "the network of section 3.1"),
        S("importance",
          "An important node is one that when removed would increase the loss of the model. A zero node"
          " will not significantly affect the loss", "004, chapter 3",
          "loss change on the validation split; important above tol = {tol}, worse below -tol",
          "draft's, read by us", "the draft names no data and no threshold: both ours"),
        S("networks", "", "004, section 3.2", "{n_networks} per data set", "ours",
          "statistics over trained networks"),
        S("greedy pruning",
          "removes the first node that improves or does not affect the model, we will also start "
          "ignoring nodes that are quite important", "004, chapter 3",
          "a node raising the loss by more than {important} is not tested again", "draft's, read by us",
          "\"quite important\" needs a threshold; ours"),
        S("the field's criteria", "", "none of the drafts",
          "Torch-Pruning's importance criteria with the library's defaults beside ours; nodes removed in "
          "each criterion's order while the validation loss rises by at most {rank_budget}", "ours",
          "no draft compares criteria; the budget is ours"),
        S("MLP with three hidden layers", "a 3 hidden layer MLP", "004, chapter 3",
          "widths {mlp3_hidden}, {mlp3_epochs} epochs, {mlp3_seeds} seeds per setting", "ours",
          "the draft gives no sizes and no number of networks"),
        S("batch sizes", "Effects of Changing Training Batch Size on Node Importance", "004, 4.1",
          "{batch_sizes}", "ours", "a heading only"),
        S("dropout rates", "Effects of Using Dropout", "004, 4.2", "{dropouts}", "ours", "a heading only"),
        S("iterative initialisation", "Iterative weight initialization using Node importance", "004, 4.3",
          "{rewind_rounds} rounds of prune (tol {rewind_tol}) and retrain from the survivors' initial "
          "weights", "ours", "a heading only: the chapter states its reading"),
        S("CNN", "a CNN with 4 convolutional layers followed by a dense layer", "004, chapter 3",
          "conv 32, 32, 64, 64 (3x3), max-pool after the 2nd and 4th, dense 128; {cnn_dataset}, "
          "{cnn_epochs} epochs", "draft's, read by us", "the draft gives the layer count only"),
        S("pruning by class", "Pruning based on class accuracy", "004, 5.2",
          "no class's validation loss may rise by more than {cnn_tol}", "ours", "a heading only"),
        S("MNIST and Fashion-MNIST data", "", "004", _train, "ours",
          "the draft does not say which images train"),
        _SEED,
    ],
    "tensor_decomposition": [
        S("input decomposition", "# inputs 784 / 3; # hidden neurons 3 / 5", "001, week 5",
          "the same sizes (3s 4s 7s, 3s 4s 9s: rank 3; all digits: rank 15, hidden 10 / 15)", "draft",
          "stated"),
        S("input MLPs: epochs", "", "001", "{input_epochs}", "ours", "the slides give none"),
        S("input MLPs: seeds", "", "001, 002",
          "{input_seeds} classifiers per representation (seeds {seed} on), one decomposition (seed {seed})",
          "ours", "the slides report one run; a mean and its range need several, each a short run here"),
        S("test images' loadings", "", "001",
          "least-squares projection on the training images' factors; loadings standardised with the "
          "training set's mean and deviation", "ours",
          "the slides do not say; no test information may enter the features"),
        S("Tucker input", "Using full rank in the spatial dimensions and 20 hidden neurons in each",
          "002, week 6", "ranks {tucker_ranks}, 20 hidden", "draft", "stated"),
        S("week-6 network", "Net( (conv1): Conv2d(1, 16, kernel_size=(5, 5) [...] (l_out): Linear(84, 10)",
          "002, week 6", "the same layers; {lenet_epochs} epochs", "draft's, read by us",
          "the layers are the listing's; the epochs ours (none given)"),
        S("the draft's plan",
          "(l1): Sequential( (0): Linear(800, 40) (1): Linear(40, 200) (2): Linear(200, 120)", "002, week 6",
          "the listing's ranks, with l1's middle rank 120 instead of 200", "draft's, read by us",
          "a rank above the layer's 120 outputs is not a decomposition"),
        S("fine-tuning", "Decomposed network after fine-tuning", "002, week 6",
          "{finetune_epochs} epochs of Adam at {finetune_lr}", "ours", "the slides give no settings"),
        S("week-6 network: seeds", "", "002, week 6",
          "{lenet_seeds} networks (seeds {seed} on), each decomposed and fine-tuned alike; D-T5 times the "
          "first seed's", "ours", "the slides report one run; a mean and its range need several"),
        S("timing", "Mean Time (10,000)", "002, week 6",
          "median of {time_repeats} repeats, batches of {time_batch}, models taking turns", "ours",
          "the slides do not say how they timed"),
        S("CIFAR-10 network", "we want to deploy a large pre-trained model on mobile devices", "003, 3.1",
          "Baselines' CNN with max-pooling and augmentation (the book's layers), trained {cifar_epochs}"
          " epochs (Baselines' B-F7 trains longer: its settings table)", "ours",
          "the report's Part 3 network is not described; its original reaches about 90 %, far above ours "
          "(D-T6): only drops from each network's own original compare"),
        S("magnitude pruning rates", "Accuracy vs prune rate for various layers", "003, Figure 5",
          "{prune_rates}", "ours", "the report gives no rates"),
        S("reconstruction ranks", "keeping R1 fixed to 64 and varying R2", "003, 3.4",
          "{recon_ranks}, the other rank at 64", "draft's, read by us",
          "the scheme is the report's, the grid ours"),
        S("k", "at k=8 [...] R1 = c and R2 = f", "003, 3.4",
          "k in {ks}, ranks k/8 of each dimension; the first convolution left dense", "draft's, read by us",
          "the scheme is the report's; a 3-channel first layer has nothing to give (ours)"),
        S("fine-tuning at k = 4", "", "003", "{k_finetune_epochs} epoch(s)", "ours",
          "the report mentions none: its numbers stand beside ours without it"),
        S("timing images", "10000/10000 [=====] - 2s", "003, Figure 8",
          "{cifar_time_images} images in batches of {cifar_time_batch}", "ours", "fits the CPU time"),
        S("methods at one budget", "", "000, 001 (literature)",
          "{methods} at {budget_fraction} of each layer's parameters, {method_finetune_epochs} epochs "
          "of fine-tuning", "ours", "a new item (D-T7)"),
        S("tensorly-torch's layers", "", "none of the drafts",
          "tltorch.FactorizedConv (convolving through the factors) at D-T7's CP, Tucker-2 and TT ranks, "
          "the same fine-tuning", "ours", "a new item (D-T8): no draft compares libraries"),
        S("MNIST data", "", "001, 002", _input, "ours", "the slides do not say which images train"),
        _SEED,
    ],
    "vgg_case_study": [
        S("data set", "Case study: Reducing a VGG-16 model trained on X dataset", "004, chapter 6", _vgg,
          "ours", "the draft leaves the data set open (\"X\")"),
        S("network", "VGG-16", "004, 2.7.1", "VGG-16 with batch norm for 32x32 images at width {width}",
          "draft's, read by us", "the width is ours: a full-width VGG-16 is a GPU run"),
        S("training", "", "004",
          "{epochs} epochs, SGD peak lr {lr} ({schedule}), weight decay {weight_decay}, label smoothing"
          " {label_smoothing}, dropout {dropout}", "ours", "the draft has a heading only"),
        S("pruning", "", "004",
          "filters of smallest L1 norm, tolerance steps of {prune_tol} points until {target_speedup} "
          "times as fast", "ours", "the draft has a heading only"),
        S("decomposition", "", "004", "Tucker-2, ranks keeping {tucker_rule} of each kernel's energy",
          "ours", "the draft has a heading only"),
        S("fine-tuning", "", "004",
          "{finetune_epochs} epochs, {finetune_optimizer} from {finetune_lr}, distilled from the original",
          "ours", "the draft has a heading only"),
        S("a pruning library beside ours", "", "none of the drafts",
          "Torch-Pruning's filter pruning (group L1 norm, one ratio per conv; group L2 norm, one ratio over "
          "all convs) at the smallest of the ratios {peer_ratios} that is {target_speedup} times as fast; it "
          "and the book's pruned network each fine-tuned {peer_finetune_epochs} epochs, otherwise as above",
          "ours",
          "no draft compares libraries; one fine-tuning budget for all, so that only the pruning differs"),
        S("the report's k sweep", "at k=8 [...] R1 = c and R2 = f", "003, 3.4",
          "ranks k/8 of each dimension, k in {ks}, the first convolution left dense, no fine-tuning, on this "
          "chapter's VGG-16", "draft's, read by us",
          "the report names neither the convolutions it decomposes nor any fine-tuning: the first left dense "
          "and none are our reading; the network is ours, nearer the report's 90 % than the Tensor "
          "decomposition chapter's CNN"),
        _SEED,
    ],
}
# fmt: on


def _quote(setting: Setting) -> str:
    if not setting.draft:
        return (
            f"nothing ({setting.source})"
            if not setting.source[:1].isdigit()
            else (f"nothing (draft {setting.source})")
        )
    return f'"{setting.draft}" (draft {setting.source})'


def settings_section(chapter: str, params: Mapping[str, Any]) -> str:
    """MyST for chapter `chapter`'s page: its settings table, `ours` filled from `params` (the
    parameters of the run the page shows)."""
    if chapter not in SETTINGS:
        raise ValueError(f"chapter={chapter!r} has no settings table; known: {', '.join(SETTINGS)}")
    rows = [
        "| setting | the draft's words | ours | whose | why |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS[chapter]:
        cells = [s.name, _quote(s), s.ours_text(params), s.whose, s.why]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    drafts = sorted({s.source[:3] for s in SETTINGS[chapter] if s.source[:3] in DRAFTS})
    files = "; ".join("{}: `{}` ({}".format(d, *DRAFTS[d].split(" (", 1)) for d in drafts)
    return "\n".join(
        [
            "## Settings: the drafts' and ours",
            "",
            "Each setting of this run beside the draft's own words. *draft*: the draft states it and we "
            "follow; *draft's, read by us*: the draft states part of it or leaves a choice open, and the "
            "rest is ours; *ours*: the draft says nothing, and the choice is this book's. Drafts: "
            f"{files}.",
            "",
            *rows,
            "",
        ]
    )
