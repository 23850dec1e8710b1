"""The Tensor decomposition chapter's first part (drafts 001 and 002): MLPs on the CP or Tucker
loadings of the training images (test images projected on their factors) against MLPs on the
full images, draft 001's three digit sets (`input_case`) and draft 002's Tucker ranks
(`tucker_input`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd
import torch

from netshrink import data, models, published, stats, train
from netshrink.compress import input_features
from netshrink.devices import mode
from netshrink.findings import Findings, seed_spread
from netshrink.progress import model_trained as report_model
from netshrink.progress import update as report_progress


@dataclass
class Classifier:
    """An MLP trained on some representation of the images, with its test predictions."""

    label: str
    inputs: int
    hidden: int
    parameters: int
    test_acc: float
    predictions: torch.Tensor
    history: pd.DataFrame
    seed_accs: tuple[float, ...] = ()  # the test accuracy of each seed's classifier, this one's first

    def accuracy(self) -> tuple[float, float, float]:
        """The mean test accuracy over the seeds and the 95 % range one more seed's classifier
        would take (`stats.one_more_range`; NaN with one seed): (mean, low, high), fractions."""
        accs = self.seed_accs or (self.test_acc,)
        return (float(sum(accs) / len(accs)), *stats.one_more_range(accs))


def train_classifier(
    label: str,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    test_xy: tuple[torch.Tensor, torch.Tensor],
    hidden: int,
    n_classes: int,
    *,
    epochs: int,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
) -> Classifier:
    """An MLP with one hidden layer of `hidden` ReLU nodes, trained with Adam on (x, y) on
    `device` (initialised on the CPU, so alike on every device); predictions come back on the CPU."""
    (x, y), (x_test, y_test) = train_xy, test_xy
    torch.manual_seed(seed)
    model = models.MLP(in_features=x[0].numel(), hidden=(hidden,), n_classes=n_classes).to(device)
    train_loader = data.make_loader(
        data.ImageDataset(x, y), batch_size, shuffle=True, seed=seed, device=device
    )
    test_loader = data.make_loader(data.ImageDataset(x_test, y_test), 10_000, device=device)
    history = train.fit(
        model, torch.optim.Adam(model.parameters(), lr=lr), train_loader, epochs,
        test_loader=test_loader, seed=seed, progress=False,
    )  # fmt: skip
    report_model(f"MLP on {label}", float(pd.DataFrame(history)["seconds"].sum()))
    with torch.no_grad(), mode(model, training=False):
        predictions = torch.cat([model(xb).argmax(1).cpu() for xb, _ in test_loader])
    acc = float((predictions == y_test.cpu()).float().mean())
    return Classifier(
        label, x[0].numel(), hidden, models.count_parameters(model), acc, predictions, pd.DataFrame(history)
    )


@dataclass
class InputExperiment:
    """Full images against decomposed images for one digit set: classifiers and loadings."""

    classifiers: list[Classifier]
    bases: dict[str, input_features.ImageBasis]
    train_labels: torch.Tensor


def input_experiment(
    splits: data.DataSplits,
    method: str,
    ranks: Sequence[int],
    *,
    hidden_full: int,
    hidden_decomposed: int,
    epochs: int,
    seed: int = 0,
    seeds: int = 1,
    device: torch.device | str = "cpu",
) -> InputExperiment:
    """Train an MLP on the full images and one on the loadings of each rank in `ranks` (the
    training images decomposed by `method` with `seed`, the test images projected on their
    factors), each `seeds` times (seeds `seed`, `seed` + 1, ...; the first classifier kept, every
    seed's accuracy in `seed_accs`); the classifiers train on `device`, the decompositions run on
    the CPU."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds={seeds!r}: the classifiers per representation must be a positive integer")

    def trained(label: str, train_xy: tuple, test_xy: tuple, hidden: int) -> Classifier:
        runs = [train_classifier(label, train_xy, test_xy, hidden, splits.n_classes, epochs=epochs,
                                 seed=seed + i, device=device) for i in range(seeds)]  # fmt: skip
        return replace(runs[0], seed_accs=tuple(r.test_acc for r in runs))

    train_xy = (splits.train.images.flatten(1), splits.train.labels)
    test_xy = (splits.test.images.flatten(1), splits.test.labels)
    classifiers = [trained("full data", train_xy, test_xy, hidden_full)]
    bases = {}
    for rank in ranks:
        basis = input_features.decompose_images(splits.train.images, method, rank, seed=seed)
        tr, te = input_features.standardise(basis.loadings, input_features.project(splits.test.images, basis))
        label = f"{method.upper() if method == 'cp' else method.title()} rank {rank}"
        bases[label] = basis
        classifiers.append(
            trained(label, (tr, splits.train.labels), (te, splits.test.labels), hidden_decomposed)
        )
    return InputExperiment(classifiers, bases, splits.train.labels)


ACCURACY_ROWS = ("test accuracy", "accuracy range low", "accuracy range high")
"""D-T1..D-T4's accuracy rows: the mean over the seeds and the 95 % range of one more seed's."""


def input_table(
    experiment: InputExperiment, draft_columns: Mapping[str, tuple] | None = None
) -> pd.DataFrame:
    """D-T1..D-T4: inputs, hidden nodes, parameters, test accuracy (the mean over the seeds, a
    fraction) with the 95 % range one more seed's classifier would take (`ACCURACY_ROWS`), the
    seeds, and the images' fit error per classifier (one column each, one row per quantity), with
    the draft's values (inputs, hidden, parameters, accuracy as a fraction) as extra columns."""
    nan = float("nan")
    rows = {
        c.label: {
            "inputs": c.inputs,
            "hidden nodes": c.hidden,
            "parameters": c.parameters,
            **dict(zip(ACCURACY_ROWS, c.accuracy(), strict=True)),
            "seeds": len(c.seed_accs or (c.test_acc,)),
            "fit error of the images": next(
                (b.relative_error for name, b in experiment.bases.items() if name == c.label), nan
            ),
        }
        for c in experiment.classifiers
    }
    for label, (inputs, hidden, params, acc) in (draft_columns or {}).items():
        rows[f"{label} (draft)"] = {"inputs": inputs, "hidden nodes": hidden, "parameters": params,
                                    "test accuracy": acc, **dict.fromkeys(ACCURACY_ROWS[1:], nan),
                                    "seeds": nan, "fit error of the images": nan}  # fmt: skip
    return pd.DataFrame(rows)


INPUT_CASES = {"D-T1": ("D-F1", "D-F2"), "D-T2": ("D-F3", "D-F4"), "D-T3": ("D-F5", "D-F6")}
"""Item of each input-decomposition case -> its digit-grid and loading-histogram figures."""


@dataclass
class InputCase:
    """One of draft 001's cases (D-T1..D-T3): a digit set, CP rank, experiment and its table."""

    item: str
    name: str
    rank: int
    splits: data.DataSplits
    experiment: InputExperiment
    table: pd.DataFrame
    findings: Findings


def _compare(item: str, quantity: str, classifier: Classifier, draft: float, source: str) -> dict:
    """A comparison row: our mean accuracy over the seeds against the draft's one network, with
    the 95 % range one more seed's classifier would take as our spread (none with one seed)."""
    mean, low, high = classifier.accuracy()
    spread = seed_spread(low, high, len(classifier.seed_accs), "classifier")
    return {"item": item, "quantity": quantity, "ours": mean, "draft": draft, "source": source, **spread}


def input_case(
    item: str,
    *,
    val_size: int,
    train_size: int | None,
    epochs: int,
    seed: int = 0,
    seeds: int = 1,
    device: torch.device | str = "cpu",
) -> InputCase:
    """Draft 001's case `item`: its digits (all for D-T3), MLPs on the full images against MLPs on
    the loadings of a CP decomposition of the training images (rank 3, or 15 for all digits),
    `seeds` of each (`input_experiment`)."""
    report_progress(stage="input decomposition")
    if item not in published.INPUT_CP:
        raise ValueError(f"item={item!r} is not an input case; allowed: {', '.join(published.INPUT_CP)}")
    draft = published.INPUT_CP[item]
    digits = draft["digits"]
    splits = data.load_dataset("mnist", val_size=val_size, train_size=train_size, classes=digits, seed=seed)
    rank = 3 if digits else 15
    experiment = input_experiment(splits, "cp", [rank], hidden_full=draft["full"][1],
                                  hidden_decomposed=draft["decomposed"][1], epochs=epochs, seed=seed,
                                  seeds=seeds, device=device)  # fmt: skip
    full, dec = experiment.classifiers
    name = "digits " + ", ".join(map(str, digits)) if digits else "all digits"
    key = item.replace("-", "").lower()
    glue = {
        f"{key}_full": 100 * full.accuracy()[0],
        f"{key}_dec": 100 * dec.accuracy()[0],
        f"{key}_full_params": f"{full.parameters:,}",
        f"{key}_dec_params": f"{dec.parameters:,}",
        f"{key}_error": experiment.bases[dec.label].relative_error,
    }
    compare = [
        _compare(item, f"{name}: test accuracy, full images", full, draft["full"][3], "001 (week 5)"),
        _compare(item, f"{name}: test accuracy, CP rank {rank}", dec, draft["decomposed"][3], "001 (week 5)"),
    ]
    table = input_table(experiment, {"full data": draft["full"], dec.label: draft["decomposed"]})
    return InputCase(item, name, rank, splits, experiment, table, Findings(glue, compare))


def tucker_input(
    splits: data.DataSplits,
    ranks: Sequence[int],
    *,
    epochs: int,
    seed: int = 0,
    seeds: int = 1,
    device: torch.device | str = "cpu",
) -> tuple[pd.DataFrame, Findings]:
    """D-T4: 20-node MLPs on the full images and on Tucker loadings of each rank in `ranks`
    (full rank in the two spatial modes), `seeds` of each, beside draft 002's values where it
    gives them."""
    experiment = input_experiment(splits, "tucker", ranks, hidden_full=20, hidden_decomposed=20,
                                  epochs=epochs, seed=seed, seeds=seeds, device=device)  # fmt: skip
    draft = published.INPUT_TUCKER
    columns = {"full data": (784, 20, *draft["full"][1:])}
    columns.update({f"Tucker rank {r}": (r, 20, *draft[r][1:]) for r in ranks if r in draft})
    full, *decomposed = experiment.classifiers
    glue = {
        "dt4_full": 100 * full.accuracy()[0],
        "dt4_last": 100 * decomposed[-1].accuracy()[0],
        "dt4_last_rank": ranks[-1],
        "dt4_first": 100 * decomposed[0].accuracy()[0],
        "dt4_first_rank": ranks[0],
    }
    compare = [
        _compare("D-T4", f"all digits: test accuracy, Tucker rank {r}", c, draft[r][2], "002 (week 6)")
        for c, r in zip(decomposed, ranks, strict=True)
        if r in draft
    ]
    compare.append(
        _compare(
            "D-T4",
            "all digits: test accuracy, full images, 20 hidden",
            full,
            draft["full"][2],
            "002 (week 6)",
        )
    )
    return input_table(experiment, columns), Findings(glue, compare)
