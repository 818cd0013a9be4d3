"""The README's example runs and does what it says."""

import pathlib
import re

import kiln

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs_and_fits():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python example"
    scope = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    w = scope["w"].detach().squeeze()
    assert abs(w[0].item() - 1.0) < 0.05
    assert abs(w[1].item() + 2.0) < 0.05
    assert abs(w[2].item() - 0.5) < 0.05
    assert isinstance(scope["loss"], kiln.Tensor)
