"""Issue 41, item 13: a YAML alias bomb in `-p` is refused from its raw text, before it is built,
and no error message echoes a long value whole."""

import tracemalloc

import pytest
import yaml

from netshrink.book import cells, chapters, parameters, runner


def _bomb(levels):
    lines = ["a0: &a0 [x,x,x,x,x,x,x,x,x]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text", [_bomb(6), _bomb(9), "&a [1, 2]", "x: &k 3\ny: *k", "[&a 1, *a]"])
def test_anchors_and_aliases_are_refused_before_the_value_is_built(text, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the value was built")

    monkeypatch.setattr(yaml, "safe_load", never)
    tracemalloc.start()
    with pytest.raises(ValueError, match="YAML anchors and aliases .& and \\*. are not allowed") as err:
        cells.read_value("lenet_plan", text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000 and len(str(err.value)) < 300 and "\n" not in str(err.value)


def test_the_runner_refuses_an_alias_bomb_in_one_short_line(capsys, results_dir):
    """A 225-byte bomb cost about 1 GB and printed 5.8 MB."""
    argv = [
        "--profile",
        "smoke",
        "--chapters",
        "tensor_decomposition",
        "--no-build",
        "-p",
        "lenet_plan",
        _bomb(6),
    ]
    assert runner.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 300 and "anchors and aliases" in err
    assert not results_dir.exists()


def test_a_long_value_is_refused_or_shown_cut_short():
    """An error echoed a 20 KB value whole."""
    with pytest.raises(ValueError, match="the value has 20,001 characters; allowed: at most 4,096") as err:
        cells.read_value("tucker_rule", "v" * 20_001)
    assert len(str(err.value)) < 200
    cases = {"tucker_rule": "w" * 20_000, "seed": "1" * 20_000 + "x", "prune_rates": ["q" * 5000] * 500,
             "methods": ["m" * 9000],
             "lenet_plan": {f"layer{i}": ["tucker2", [i] * 300] for i in range(300)}}  # fmt: skip
    for name, value in cases.items():
        with pytest.raises(ValueError) as err:
            parameters.check_value(name, value, parameters.RULES[name]) if name != "lenet_plan" else (
                parameters.check_together({name: value})
            )
        assert len(str(err.value)) < 800 and "..." in str(err.value), (name, len(str(err.value)))


def test_a_long_value_through_a_chapters_parameters_is_cut_short():
    chapter = chapters.TENSOR_DECOMPOSITION
    values = {**chapter.parameters("smoke"), "methods": ["z" * 20_000]}
    with pytest.raises(ValueError, match="methods.*='zzz.*\\.\\.\\.") as err:
        parameters.check(chapter.notebook, values, chapter.parameters("quick"))
    assert len(str(err.value)) < 500
    with pytest.raises(ValueError, match="has no parameter 'yyy") as err:
        parameters.check(chapter.notebook, {**values, "y" * 20_000: 1}, chapter.parameters("quick"))
    assert len(str(err.value)) < 1500
    shown = parameters.shown([[["deep"] * 100] * 100] * 100)
    assert len(shown) <= 240
