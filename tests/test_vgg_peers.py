"""Torch-Pruning's filter pruning beside the book's rates (compress.peer_pruning, experiments.vgg_peers)."""

import json
import types

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.book import plots
from netshrink.compress import peer_importance as pi
from netshrink.compress import peer_pruning as pp
from netshrink.compress.filters import prune_filters
from netshrink.experiments import vgg_case_study as vc
from netshrink.experiments import vgg_peers as vp

needs_peer = pytest.mark.skipif(pi.version() is None, reason="torch-pruning is not installed")
IMAGES = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _tiny(widths=(8, 16)) -> nn.Sequential:
    """Two convs with batch norm (random running statistics) and a linear output layer, for 8x8 inputs."""
    torch.manual_seed(0)
    a, b = widths
    model = nn.Sequential(
        nn.Conv2d(3, a, 3, padding=1), nn.BatchNorm2d(a), nn.ReLU(),
        nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(b, 4),
    )  # fmt: skip
    for bn in (model[1], model[4]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _prune(model, **kwargs):
    args = {"criterion": "l1", "global_pruning": False, "ratio": 0.5, "ignored_layers": (), "round_to": 1}
    return pp.torch_pruning_filters(model, IMAGES[:1], **{**args, **kwargs})


@needs_peer
@pytest.mark.parametrize(("criterion", "global_pruning"), [("l1", False), ("group-norm", True)])
def test_pruned_models_are_real_smaller_modules(criterion, global_pruning):
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = _prune(model, criterion=criterion, global_pruning=global_pruning)
    assert models.count_parameters(pruned) < models.count_parameters(model)
    assert sum(c.out_channels for c in pruned if isinstance(c, nn.Conv2d)) < 24
    assert pruned[-1].out_features == 4, "the output layer is kept whole"
    with torch.no_grad():
        assert pruned(IMAGES).shape == model(IMAGES).shape == (8, 4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), (
        "the model is left as it was"
    )


@needs_peer
def test_l1_uniform_prunes_every_layer_by_the_same_ratio():
    pruned = _prune(_tiny(), ratio=0.25)
    assert [pruned[0].out_channels, pruned[3].out_channels] == [6, 12]
    assert (pruned[1].num_features, pruned[3].in_channels, pruned[-1].in_features) == (6, 6, 12)
    rounded = _prune(_tiny(), ratio=0.25, round_to=4)
    assert [rounded[0].out_channels, rounded[3].out_channels] == [4, 12], "kept rounded down to a multiple"
    kept_conv = _prune(_tiny(), ratio=0.25, ignored_layers=["3"])
    assert [kept_conv[0].out_channels, kept_conv[3].out_channels] == [6, 16]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"criterion": "l3"}, "criterion='l3' is not known; allowed values: l1, group-norm"),
        ({"ratio": 0}, "ratio=0 is out of range"),
        ({"ratio": 1.0}, "ratio=1.0 is out of range"),
        ({"ratio": True}, "ratio=True is out of range"),
        ({"ratio": float("nan")}, "ratio=nan is out of range"),
        ({"global_pruning": "yes"}, "global_pruning='yes' is not a bool"),
        ({"ignored_layers": ["nothing"]}, r"ignored_layers=\['nothing'\] are not layers"),
        ({"round_to": 0}, "round_to=0 is out of range"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(change, match):
    with pytest.raises(ValueError, match=match):
        _prune(_tiny(), **change)
    assert pp.check_ratio("ratio", 0.3) == 0.3


def test_the_smallest_ratio_that_reaches_the_target_or_the_fastest_marked():
    speedups = {0.5: 2.5, 0.1: 1.1, 0.3: 2.05, 0.7: 2.4}
    reach = pp.ratio_for_speedup(speedups, 2.0)
    assert (reach.ratio, reach.speedup, reach.reached, reach.note()) == (0.3, 2.05, True, "")
    out = pp.ratio_for_speedup(speedups, 3)
    assert (out.ratio, out.reached) == (0.5, False)
    assert out.note() == "cannot reach 3x: best 2.50x at ratio 0.5"
    for bad in (0.5, float("inf"), True):
        with pytest.raises(ValueError, match="target_speedup="):
            pp.ratio_for_speedup(speedups, bad)


def _run(target, ratios=(0.25, 0.5)):
    """vgg_peers on the tiny net, with a stub fine-tuning that records its calls; the peers'
    accuracy by criterion (L1 0.40, group norm 0.42), the book's 0.45 and the original's 0.5."""
    base = types.SimpleNamespace(model=_tiny(), test={"acc": 0.5}, key="k")
    ours = prune_filters(base.model, {"0": 0.5, "3": 0.5})
    reduction = vc.Reduction(
        {vp.PRUNED_STEP: ours}, {vp.PRUNED_STEP: 0.45}, {}, None, {"epochs": 1, "lr": 0.01}
    )
    calls = []

    def fine_tune(model, origin, splits, **kwargs):
        calls.append((json.loads(origin), kwargs))
        acc = {"l1": 0.40, "group-norm": 0.42}[json.loads(origin)["criterion"]]
        return types.SimpleNamespace(
            model=model, test={"acc": acc}, before={"acc": 0.1}, history=pd.DataFrame()
        )

    splits = types.SimpleNamespace(label="tiny")  # only its label is read, for the glance records
    peers = vp.vgg_peers(base, reduction, splits, fine_tune, target=target, ratios=ratios, round_to=1,
                         images=IMAGES, batch_size=4, repeats=1)  # fmt: skip
    return peers, calls, reduction


@needs_peer
def test_an_unreachable_target_is_said_in_its_row_and_the_other_rows_stand():
    peers, calls, reduction = _run(1000.0)
    table = peers.table  # plain units: fractions, seconds, counts, and whether the target was missed
    assert list(table.index) == ["original", vp.OURS, *vp.PEERS]
    assert list(table.columns) == ["ratio", "parameters", "MFLOPs per image", "seconds", "speedup",
                                   "test accuracy", "accuracy lost", "target missed"]  # fmt: skip
    assert table["target missed"].tolist() == [False, False, True, True]
    for name in vp.PEERS:
        assert peers.notes[name].startswith("cannot reach 1000x: best ")
        assert table.loc[name, "ratio"] in (0.25, 0.5)
    assert [peers.notes["original"], peers.notes[vp.OURS]] == ["", ""]
    numbers = table.drop(columns=["ratio"])
    assert numbers.notna().all().all() and (table["parameters"].iloc[1:] < table["parameters"].iloc[0]).all()
    assert table["test accuracy"].tolist() == [0.5, 0.45, 0.40, 0.42]
    assert table["accuracy lost"].tolist() == pytest.approx([0, 0.05, 0.10, 0.08]), "fractions"
    assert peers.kept["original"] == {"0": 1.0, "3": 1.0} and peers.kept[vp.OURS] == {"0": 0.5, "3": 0.5}
    # the page's table: the filters kept as text made from those fractions, and the notes
    shown = peers.shown()
    assert list(shown.columns) == ["ratio", "filters kept (%)", *table.columns[1:], "note"]
    assert list(shown["filters kept (%)"].iloc[:2]) == ["100, 100", "50, 50"]
    assert shown["note"].to_dict() == peers.notes
    assert all(kwargs == reduction.fine_tuning for _, kwargs in calls), "fine-tuned exactly as ours"
    assert len({json.dumps(origin, sort_keys=True) for origin, _ in calls}) == 2, "one cache origin each"
    found = vp.peers_findings(peers)
    sentence = found.glue["peers_sentence"]
    assert sentence.startswith(f"Only {vp.OURS} reached the target")
    # every network but the original on the glance page, a marker each, missed target or not
    assert [c["method"] for c in found.compressions] == [vp.OURS, *vp.PEERS]
    assert {c["item"] for c in found.compressions} == {"V-T3"} and peers.data_set
    assert [c["accuracy"] for c in found.compressions] == [0.45, 0.40, 0.42]
    assert all(f"{name}: cannot reach 1000x" in sentence for name in vp.PEERS)


@needs_peer
def test_the_search_takes_the_smallest_ratio_fast_enough_and_names_layers_left_whole(monkeypatch):
    monkeypatch.setattr(vp, "measured_speedups", lambda model, pruned, images, repeats: (
        {}, {r: 1 + 2 * r for r in pruned}))  # fmt: skip
    model = _tiny((4, 16))
    config = vp.PEERS[f"{pi.PEER}, L1, uniform"]
    found = vp.choose_ratio(
        model, IMAGES, config, ratios=[0.25, 0.5, 0.75], target=1.9, round_to=4, repeats=1
    )
    assert (found.reach.ratio, found.reach.reached) == (0.5, True)
    assert found.model[0].out_channels == 4 and found.model[3].out_channels == 8
    assert (
        found.note
        == "0 left whole (ratio 0.5 with channels kept in multiples of 4 would remove all their filters)"
    )


def test_the_sentence_says_who_wins_and_by_how_much():
    names = ["original", vp.OURS, *vp.PEERS]
    table = pd.DataFrame(
        {"speedup": [1.0, 2.1, 2.3, 1.6], "test accuracy": [0.9, 0.88, 0.885, 0.87],
         "accuracy lost": [0.0, 0.02, 0.015, 0.03], "target missed": [False, False, False, True]},
        index=names,
    )  # fmt: skip
    notes = dict(zip(names, ["", "", "", "cannot reach 2x: best 1.60x at ratio 0.9"], strict=True))
    glue = vp.peers_findings(vp.Peers(table, {}, notes)).glue
    fig = plots.accuracy_against_speedup(table, "peers")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines[:4]] == [*table.index[1:], "original"]
    assert ax.lines[3].get_xydata().tolist() == [[1.0, 90.0]] and ax.lines[4].get_ydata()[0] == 90.0
    plt.close(fig)
    l1, group = vp.PEERS
    assert glue["peers_sentence"] == (
        f"At the measured speedups ({vp.OURS} 2.10x, {l1} 2.30x), {l1} is the most accurate after "
        f"fine-tuning, and at least as fast as {vp.OURS}: 88.50 % against 88.00 % for {vp.OURS} (0.50 "
        f"points, one seed each). {group}: cannot reach 2x: best 1.60x at ratio 0.9."
    )
    # the most accurate but slower: the sentence says that accuracy alone ranks nothing there
    slower = table.assign(speedup=[1.0, 2.5, 2.3, 1.6])
    sentence = vp.peers_findings(vp.Peers(slower, {}, notes)).glue["peers_sentence"]
    assert f"{l1} is the most accurate after fine-tuning, but slower than {vp.OURS}: at unequal" in sentence
    assert glue["peers_ours_acc"] == pytest.approx(88.0) and glue["peers_tp_l1_uniform_speedup"] == 2.3
    assert (glue["peers_ours_lost"], glue["peers_tp_l1_uniform_lost"]) == pytest.approx((2.0, 1.5)), "points"
    # the target missed is read from its column, not from the note's words
    unnamed = vp.peers_findings(vp.Peers(table, {}, notes))
    assert unnamed.compressions == [], "no data set named: none recorded"
    quiet = vp.peers_findings(vp.Peers(table, {}, dict.fromkeys(names, ""))).glue["peers_sentence"]
    assert quiet.startswith(f"At the measured speedups ({vp.OURS} 2.10x, {l1} 2.30x), {l1} is the most")


def test_without_the_peer_the_table_has_the_books_rows_and_the_page_says_so(monkeypatch):
    monkeypatch.setattr(pi, "version", lambda: None)
    with pytest.raises(ImportError, match="Torch-Pruning is not installed"):
        _prune(_tiny())
    with pytest.raises(ImportError, match="pip install torch-pruning"):
        pi.require()
    peers, calls, _ = _run(2.0)
    assert list(peers.table.index) == ["original", vp.OURS] and calls == []
    assert "not installed" in vp.peer_line()
    assert vp.peers_findings(peers).glue["peers_sentence"] == "No Torch-Pruning configuration was built."


@needs_peer
def test_a_shorter_budget_fine_tunes_the_books_pruned_network_and_the_peers_alike():
    base = types.SimpleNamespace(model=_tiny(), test={"acc": 0.5}, key="k")
    pruned = prune_filters(base.model, {"0": 0.5, "3": 0.5})
    teacher = types.SimpleNamespace(weight=0.9, temperature=4.0)
    settings = {"epochs": 20, "lr": 0.01, "optimizer": "sgd", "label_smoothing": 0.1, "distill": teacher}
    reduction = vc.Reduction(
        {vp.UNTUNED_STEP: pruned, vp.PRUNED_STEP: pruned}, {vp.UNTUNED_STEP: 0.3, vp.PRUNED_STEP: 0.45}, {},
        None, settings, {vp.UNTUNED_STEP: '{"model": "k", "rates": {}}'},
    )  # fmt: skip
    calls = []

    def fine_tune(model, origin, splits, **kwargs):
        calls.append((origin, kwargs))
        return types.SimpleNamespace(
            model=model, test={"acc": 0.44}, before={"acc": 0.1}, history=pd.DataFrame()
        )

    splits = types.SimpleNamespace(label="tiny")  # only its label is read, for the glance records
    peers = vp.vgg_peers(base, reduction, splits, fine_tune, target=1000.0, ratios=(0.5,), round_to=1,
                         images=IMAGES, batch_size=4, repeats=1, epochs=5)  # fmt: skip
    assert len(calls) == 3 and all(kwargs == {**settings, "epochs": 5} for _, kwargs in calls)
    assert calls[0][0] == reduction.origins[vp.UNTUNED_STEP], "ours again from its untuned network's origin"
    assert peers.table.loc[vp.OURS, "test accuracy"] == 0.44, "not the chapter's 20-epoch step"
    shorter = vp.budget_sentence(reduction, 5)
    assert "not V-T2's pruned step (fine-tuned 20 epochs)" in shorter
    assert "fine-tuned 5 epochs here" in shorter
    assert vp.budget_sentence(reduction, 20).startswith("Each peer network is fine-tuned exactly as")
    assert vp.peer_recipe(reduction, 5).startswith("5 epochs of SGD")
    assert vp.peer_fine_tuning(reduction, None) is settings
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match=f"epochs={bad!r}"):
            vp.peer_fine_tuning(reduction, bad)
