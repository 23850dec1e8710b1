"""The "Using the package" page's examples run as they stand, in order, on a model of the
reader's own (book/package.md)."""

import re

import matplotlib

matplotlib.use("Agg")

from conftest import ROOT  # noqa: E402

PAGE = ROOT / "book" / "package.md"


def test_every_example_of_the_package_page_runs_in_order(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 7, "the page lost its examples"
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{PAGE.name}, example {number}", "exec"), namespace)  # noqa: S102
        except Exception as err:
            raise AssertionError(f"example {number} of {PAGE.name} fails:\n{block}") from err
    assert namespace["train"].evaluate(namespace["model"], namespace["test"])["acc"] > 0.8
    assert namespace["smaller"][1].out_features == int(namespace["keep"].sum()) < 64
    net, pruned = namespace["net"], namespace["pruned"]  # the reader's own nn.Module, start to finish
    assert type(net).__name__ == "Net" and not isinstance(net, namespace["nn"].Sequential)
    assert pruned.fc.out_features == pruned.head.in_features == 32
    assert namespace["train"].evaluate(pruned, namespace["test"])["acc"] > 0.8
    printed = capsys.readouterr().out
    assert "tucker2" in printed and "speedup" in printed and "decomposed" in printed
    assert "['conv', 'fc']" in printed and "an addition (residual add)" in printed
