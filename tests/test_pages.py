from pathlib import Path

from netshrink.book import chapters, pages


def manifest():
    return {
        "profile": "smoke",
        "items": {
            "R-F1": {
                "chapter": "random_pruning",
                "kind": "figure",
                "files": ["random_pruning/R-F1.png", "random_pruning/R-F1.svg"],
                "captions": ["Accuracy."],
                "file_captions": {"random_pruning/R-F1.png": "Accuracy against n."},
            },
            "R-T1": {
                "chapter": "random_pruning",
                "kind": "table",
                "files": ["random_pruning/R-T1.csv"],
                "captions": ["A table."],
            },
        },
        "comparisons": {
            "random_pruning": [
                {
                    "id": "R-T1: x",
                    "item": "R-T1",
                    "quantity": "mean acc | n=64",
                    "ours": 0.84412,
                    "draft": 0.8485,
                    "source": "draft 004",
                }
            ]
        },
        "compression": {
            "node_importance": [
                {
                    "id": "a",
                    "item": "I-T2",
                    "model": "MLP 128, exhaustive",
                    "data set": "MNIST",
                    "parameters": 85075,
                    "base parameters": 101770,
                    "MFLOPs": 0.17,
                    "base MFLOPs": 0.2,
                    "accuracy": 0.9748,
                    "base accuracy": 0.9764,
                    "speedup": 1.15,
                    "how": "x",
                }
            ]
        },
    }


def test_glance_lists_every_figure_comparison_and_compressed_model():
    text, files = pages.glance_sections(manifest(), Path("/results"), chapters.CHAPTERS)
    assert "```{figure} figures/random_pruning/R-F1.png" in text and ":name: glance-R-F1" in text
    assert "Accuracy against n." in text, "each file keeps its own caption"
    assert files == {"figures/random_pruning/R-F1.png": Path("/results/smoke/random_pruning/R-F1.png")}
    assert (
        "| R-T1 | mean acc \\| n=64 | 0.8441 | 0.8485 | draft 004 | `smoke` "
        "| {doc}`../chapters/02_random_pruning` | **no verdict**: R-T1: mean acc \\| n=64: ours 0.8441 "
        "and the draft&#x27;s 0.8485 differ beyond 5e-05 and no reason is declared" in text
    ), "a row without a declared reason says so in its verdict column"
    agrees = manifest()
    agrees["comparisons"]["random_pruning"][0].update(ours=0.8485, spread=0.01)
    text, _ = pages.glance_sections(agrees, Path("/results"), chapters.CHAPTERS)
    assert (
        "| **agrees**: ours +0 from the draft's, within 0.01: the draft's rounding (5e-05); our spread (0.01)"
        in text
    )
    assert "85,075 of 101,770" in text and "97.48 (was 97.64)" in text and "1.15x | `smoke` |" in text


def test_glance_shows_items_that_are_a_table_and_a_figure_both_from_the_run_that_made_them():
    both = manifest()
    both["items"]["D-F8"] = {"chapter": "tensor_decomposition", "kind": "table", "profile": "full",
                             "files": ["tensor_decomposition/D-F8.csv", "tensor_decomposition/D-F8.png"],
                             "captions": ["Magnitude pruning."]}  # fmt: skip
    text, files = pages.glance_sections(both, Path("/results"), chapters.CHAPTERS)
    assert "```{figure} figures/tensor_decomposition/D-F8.png" in text
    assert files["figures/tensor_decomposition/D-F8.png"] == Path(
        "/results/full/tensor_decomposition/D-F8.png"
    )
    assert files["figures/random_pruning/R-F1.png"] == Path("/results/smoke/random_pruning/R-F1.png")


def test_glance_says_when_there_is_nothing_to_show():
    text, files = pages.glance_sections({"profile": "quick", "items": {}}, Path("/r"), chapters.CHAPTERS)
    assert "No chapter of this run has compressed a model yet." in text and files == {}


def test_parameter_tables_come_from_the_notebooks(project_root):
    text = pages.parameter_sections(chapters.CHAPTERS.values(), project_root)
    for chapter in chapters.CHAPTERS.values():
        assert f"## {chapter.title}" in text
        for name in chapter.parameters("quick"):
            assert f"| `{name}` |" in text, (chapter.name, name)
    assert "| `n_trials` | int | `200` | `20` | `1000` |" in text
    assert "| `profile` | str | `'quick'` | `'smoke'` | `'full'` |" in text


def test_the_scale_of_a_run_shows_parameter_values_of_any_kind_without_crashing():
    from netshrink.book import pages

    assert (
        pages._scale({"train_size": 5000, "epochs": 3, "width": 0.5})
        == "subsets: train_size 5,000; epochs epochs 3; width 0.5"
    )
    odd = pages._scale({"train_size": "<b>all</b>", "epochs": True, "width": "wide"})
    assert "'<b>all</b>'" in odd and "True" in odd and "'wide'" in odd


def test_the_compression_map_is_drawn_from_the_drawable_records_only(tmp_path):
    good = {"item": "I-T2", "how": "nodes", "speedup": 1.2, "accuracy": 0.9, "base accuracy": 0.95,
            "parameters": 5, "base parameters": 10}  # fmt: skip
    bad = {**good, "speedup": "fast"}
    assert pages.write_compression_map({"compression": {}}, tmp_path) is None
    assert pages.write_compression_map({"compression": {"c": [bad]}}, tmp_path) is None
    path = pages.write_compression_map({"compression": {"c": [good, bad]}}, tmp_path)
    assert path == tmp_path / pages.COMPRESSION_MAP and path.stat().st_size > 0
    shown = {**good, "model": "m", "data set": "MNIST", "MFLOPs": 1.0, "base MFLOPs": 2.0}
    text, _ = pages.glance_sections({"compression": {"c": [shown]}}, tmp_path, chapters.CHAPTERS)
    assert f"figures/{pages.COMPRESSION_MAP}" in text
