"""``scripts/compile_costs.py``: each part alone in a fresh cache, then all together.

A stand-in (an empty body, a fraction of a second to compile) takes the
place of the engine's parts, so only the script's bookkeeping is checked.
"""

from .conftest import SCRIPTS, load_script


def test_it_times_a_part_alone_and_splits_llvm_by_stage(capsys):
    assert load_script("compile_costs").main(["--rounds", "1", "gradient_update_row_unused"]) == 0
    out = capsys.readouterr().out
    assert "each part alone, fresh process and cache (float32)" in out
    alone = next(line for line in out.splitlines() if "gradient_update_row_unused" in line)
    low, median = (float(word) for word in alone.split()[1:])
    assert 0 < low <= median
    assert "all 1 parts in one process (float32)" in out
    assert "machine code (parts)" in out


def test_the_default_parts_are_a_default_training_run(capsys):
    parts = load_script("compile_costs").default_parts(SCRIPTS.parent)
    assert {"train_steps", "forward_block", "gradient_block", "prepare_inputs"} <= set(parts)
    assert "gradient_update_row_unused" in parts  # batch 64 never takes the one-row path
