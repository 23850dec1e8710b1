"""Tables for people: what a page shows is formatted for reading, the CSV keeps every digit, and
a committed run's raw tables are rendered again from their CSV at build time."""

import math

import nbformat
import pandas as pd
import pytest

from netshrink.book import report, sitecheck, tables


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ([15000000.0, 5400000.0], ["15,000,000", "5,400,000"]),  # counts, even as floats
        ([3752746, 436098], ["3,752,746", "436,098"]),
        ([0.1, 0.2, 0.5], ["0.1", "0.2", "0.5"]),  # no trailing zeros a rate does not have
        ([89.35, 88.2], ["89.35", "88.20"]),  # one decimal count for the column
        ([0.661271123, 0.0732851], ["0.6613", "0.0733"]),
        ([15057.478, 1778.95], ["15,057", "1,779"]),
        ([0.9189663529, 2.66504e-07], ["0.919", "2.7e-07"]),  # not printed as a zero
        ([1.2e-05, 3.4e-06], ["1.2e-05", "3.4e-06"]),
        ([784, 3, 2367, 68.41], ["784", "3", "2,367", "68.41"]),  # a table whose rows are quantities
        ([0.01234, 0.0, 0.0101], ["0.01234", "0", "0.01010"]),  # a zero, not 0.00000
        (["a, b", float("nan"), None], ["a, b", "–", "–"]),
        ([0.9999999999999999, 0.4709, 0.2073], ["1", "0.4709", "0.2073"]),  # not 1.0000
        ([1.0, 0.5], ["1.0", "0.5"]),
    ],
)
def test_numbers_are_formatted_for_reading(values, shown):
    assert tables.format_column(values) == shown


def test_the_index_is_a_named_first_column_and_a_grouped_index_is_written_once():
    index = pd.MultiIndex.from_product([["MNIST", "Fashion"], ["mean", "std"]], names=["data set", None])
    df = pd.DataFrame({"acc": [0.97123456, 0.0012, 0.88, 0.002]}, index=index)
    out = tables.readable(df)
    assert list(out.columns) == ["data set", "", "acc"]  # no row of index names
    assert out["data set"].tolist() == ["MNIST", "", "Fashion", ""]
    assert out["acc"].tolist() == ["0.9712", "0.0012", "0.8800", "0.0020"]
    assert list(tables.readable(pd.DataFrame({"x": [1, 2]})).columns) == ["x"]  # a plain 0..n-1 is left out


def test_fractions_named_in_percent_are_shown_in_percent_and_kept_as_fractions():
    df = pd.DataFrame(
        {"test accuracy": [0.9123, None], "acc": [0.9123, 0.5]}, index=pd.Index(["a", "b"], name="m")
    )
    out = tables.readable(df)
    assert list(out.columns) == ["m", "test accuracy (%)", "acc"]  # only the declared labels
    assert out["test accuracy (%)"].tolist() == ["91.23", "–"] and out["acc"].tolist() == ["0.9123", "0.5000"]
    assert df["test accuracy"].iloc[0] == 0.9123  # the data is not touched


def test_a_row_of_fractions_named_in_percent_is_shown_in_percent_in_a_table_of_quantities(tmp_path):
    df = pd.DataFrame(
        {
            "full data": [784.0, 3.0, 2367.0, 0.943046, float("nan")],
            "CP rank 3": [3.0, 5.0, 38.0, 0.3404, 0.6919],
        },
        index=["inputs", "hidden nodes", "parameters", "test accuracy", "fit error of the images"],
    )  # D-T1..D-T4: one row per quantity
    df.to_csv(tmp_path / "D-T1.csv")
    for frame in (df, tables.read_csv(tmp_path / "D-T1.csv")):  # as written, and again from the CSV
        out = tables.readable(frame)
        labels = ["inputs", "hidden nodes", "parameters", "test accuracy (%)", "fit error of the images"]
        assert out.iloc[:, 0].tolist() == labels
        assert out["full data"].tolist() == ["784", "3", "2,367", "94.3", "–"]
        assert out["CP rank 3"].tolist() == ["3", "5", "38", "34.04", "0.69"]  # the fit error is left alone
    assert df.loc["test accuracy", "full data"] == 0.943046  # the data is not touched
    rates = pd.DataFrame({"acc": [0.5, 0.25]}, index=pd.Index([0.1, 0.5], name="rate"))
    assert tables.readable(rates)["rate"].tolist() == ["0.1", "0.5"]  # other labels: nothing scaled


def test_the_csv_keeps_every_digit_and_the_page_shows_the_readable_table(results_dir, monkeypatch):
    shown = []
    monkeypatch.setattr(report, "display", lambda obj, **kw: shown.append((obj, kw)))
    df = pd.DataFrame({"parameters": [15000000.0], "acc (%)": [89.14999999999999]}, index=["VGG"])
    rep = report.Report("demo", "smoke", {}, root=results_dir)
    rep.table("X-T1", df.rename_axis("model"), "A table.")
    path = results_dir / "smoke" / "demo" / "X-T1.csv"
    assert "89.14999999999999" in path.read_text()
    back = tables.read_csv(path)
    assert back.index.name == "model" and back["acc (%)"].iloc[0] == 89.14999999999999
    html, kw = shown[0][0].data, shown[0][1]
    assert kw["metadata"] == {tables.OUTPUT_KEY: {"table": "demo/X-T1.csv"}}
    assert "15,000,000" in html and "89.15" in html and not sitecheck.raw_cells(html)


def _styled_output(df, caption, execute_result=False):
    html = df.style.format(precision=4).set_caption(caption).to_html()
    if execute_result:
        return nbformat.v4.new_output("execute_result", data={"text/html": df.to_html()}, execution_count=1)
    return nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": "x"})


def test_a_committed_runs_raw_tables_are_rendered_again_from_their_csv(tmp_path):
    run_dir = tmp_path / "full"
    (run_dir / "demo").mkdir(parents=True)
    df = pd.DataFrame({"parameters": [15000000.0, 3752746.0], "rate": [0.1, 0.123456789]},
                      index=pd.Index(["a", "b"], name="model"))  # fmt: skip
    df.to_csv(run_dir / "demo" / "X-T1.csv")
    other = pd.DataFrame({"loss": [0.1234567891, 1.5]})
    cell = nbformat.v4.new_code_cell("report.table(...)")
    cell.outputs = [_styled_output(df, "Same caption."), _styled_output(df, "x", execute_result=True)]
    loose = nbformat.v4.new_code_cell("other")
    loose.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/html": other.to_html()}, execution_count=2)
    ]
    nb = nbformat.v4.new_notebook(cells=[cell, loose])
    before = sum(len(sitecheck.raw_cells(o["data"]["text/html"])) for c in nb.cells for o in c.outputs)
    shown = tables.reformat_outputs(nb, run_dir, {"demo/X-T1.csv": "Same caption."})
    assert before > 0 and shown == 2
    assert len(cell.outputs) == 1, "the frame the cell returned after its table is the same table"
    page = cell.outputs[0]["data"]["text/html"]
    assert "15,000,000" in page and "3,752,746" in page and "0.1235" in page and "model" in page
    assert not any(sitecheck.raw_cells(o["data"]["text/html"]) for c in nb.cells for o in c.outputs)
    assert "<td>0.123</td>" in loose.outputs[0]["data"]["text/html"]  # a table no CSV names: parsed


@pytest.mark.parametrize(
    ("cell", "raw"),
    [
        ("15000000.0000", True),
        ("0.661271123", True),
        ("3752746", True),
        ("1000.0000", True),
        ("15,000,000", False),
        ("89.35", False),
        ("0.6613", False),
        ("2.7e-07", False),
        ("features.10", False),
        ("2026", False),
    ],
)
def test_the_page_check_finds_raw_numbers(cell, raw):
    assert bool(sitecheck.raw_cells(f"<table><tr><td>{cell}</td></tr></table>")) is raw


def test_values_in_code_are_not_page_numbers():
    assert not sitecheck.raw_cells("<table><tr><td><code>12000</code></td></tr></table>")
    assert math.isclose(len(sitecheck.raw_cells("<table><tr><th>12000</th></tr></table>")), 1)


def test_a_table_is_labelled_with_its_item_as_a_figure_is():
    assert tables.item_of("random_pruning/R-T3-accuracy.csv") == "R-T3"
    assert tables.item_of("notes.csv") is None
    assert "<strong>R-B1.</strong> Masks." in tables.to_html(pd.DataFrame({"x": [1]}), "Masks.", "R-B1")
