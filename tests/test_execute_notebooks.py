"""tools.execute_notebooks stores a notebook as JupyterLab would save it."""
import nbformat

from tools.execute_notebooks import merged_streams, normalise


def stream(name, text):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_consecutive_prints_to_one_stream_become_one_output():
    outputs = [stream("stdout", "epoch 1\n"), stream("stdout", "epoch 2\n"), stream("stderr", "warn\n"),
               stream("stdout", "epoch 3\n"), nbformat.v4.new_output("execute_result", data={"text/plain": "1"}),
               stream("stdout", "done\n")]
    merged = merged_streams(outputs)
    assert [(o.output_type, o.get("name"), o.get("text")) for o in merged] == [
        ("stream", "stdout", "epoch 1\nepoch 2\n"), ("stream", "stderr", "warn\n"), ("stream", "stdout", "epoch 3\n"),
        ("execute_result", None, None), ("stream", "stdout", "done\n")]


def test_normalise_merges_the_streams_of_every_code_cell():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1); print(2)")
    cell.outputs = [stream("stdout", "1\n"), stream("stdout", "2\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), cell]
    normalise(nb)
    assert [o.text for o in nb.cells[1].outputs] == ["1\n2\n"]
