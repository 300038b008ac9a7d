"""Model files: round trip, atomic save, and refusal of anything not ours."""

import json
import os
import zipfile

import numpy as np
import pytest

from fastnn import ModelFileError, Network, load_model, save_model
from fastnn import modelfile

from .conftest import same_parameters


@pytest.fixture
def net():
    model = Network([784, 12, 1], hidden="sigmoid", classes=(1, 2), dtype="float64", seed=4)
    model.weights[0] += 0.5  # not the freshly initialised values
    return model


def test_a_saved_model_loads_back_identical(tmp_path, net):
    path = save_model(tmp_path / "model.npz", net, config={"lr": 0.1})
    loaded = load_model(path)
    assert (loaded.sizes, loaded.hidden, loaded.classes, loaded.dtype) == \
           (net.sizes, net.hidden, net.classes, net.dtype)
    assert same_parameters(loaded, net)
    assert Network.load(path).classes == (1, 2)


def test_the_file_never_needs_pickle(tmp_path, net):
    path = save_model(tmp_path / "model.npz", net)
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"meta", "weights_0", "weights_1", "biases_0", "biases_1"}


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_saved_file_gets_the_mode_the_umask_gives_any_new_file(tmp_path, net, umask, mode):
    old = os.umask(umask)
    try:
        path = save_model(tmp_path / "model.npz", net)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_saving_never_changes_the_process_umask(tmp_path, net, monkeypatch):
    # The umask is shared by every thread: setting it, even for a moment, races with
    # threads that create files meanwhile.
    def umask(mask):
        raise AssertionError(f"save_model set the process umask to {mask:o}")

    monkeypatch.setattr(os, "umask", umask)
    save_model(tmp_path / "model.npz", net)


def test_a_failed_save_leaves_the_previous_file_untouched(tmp_path, net, monkeypatch):
    path = save_model(tmp_path / "model.npz", net)
    good = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(modelfile.np, "savez", disk_full)
    net.weights[0] += 1
    with pytest.raises(OSError, match="No space left"):
        save_model(path, net)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_a_diverged_model_is_not_saved(tmp_path, net):
    net.weights[1][0, 0] = np.nan
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        save_model(tmp_path / "model.npz", net)
    assert not (tmp_path / "model.npz").exists()


def rewrite(path, **changes):
    """Re-pack a model file with some entries replaced."""
    with np.load(path) as archive:
        contents = {name: archive[name] for name in archive.files}
    contents.update(changes)
    np.savez(path, **{k: v for k, v in contents.items() if v is not None})


def meta_of(path):
    with np.load(path) as archive:
        return json.loads(archive["meta"].tobytes())


def encoded(meta):
    return np.frombuffer(json.dumps(meta).encode(), np.uint8)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.npz")


def test_a_file_that_is_not_an_archive_is_refused(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match="not a fastnn model file"):
        load_model(path)


def test_a_truncated_file_is_refused(tmp_path, net):
    path = save_model(tmp_path / "model.npz", net)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(path)


def test_an_npz_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match="no 'meta' entry"):
        load_model(path)


def test_a_pickled_object_is_never_loaded(tmp_path, net):
    path = save_model(tmp_path / "model.npz", net)
    rewrite(path, weights_0=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="pickled objects, which fastnn never loads"):
        load_model(path)


def test_another_format_or_version_is_refused(tmp_path, net):
    path = save_model(tmp_path / "model.npz", net)
    meta = meta_of(path)
    rewrite(path, meta=encoded({**meta, "version": 99}))
    with pytest.raises(ModelFileError, match="version 99; this fastnn reads version 1"):
        load_model(path)
    rewrite(path, meta=encoded({**meta, "format": "keras"}))
    with pytest.raises(ModelFileError, match="does not name the fastnn-model format"):
        load_model(path)


def test_tampered_parameters_fail_the_checksum(tmp_path, net):
    path = save_model(tmp_path / "model.npz", net)
    rewrite(path, biases_1=np.array([3.0]))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(path)


def test_parameters_that_disagree_with_the_configuration_are_refused(tmp_path, net):
    path = save_model(tmp_path / "model.npz", net)
    rewrite(path, weights_1=np.zeros((13, 1)))
    with pytest.raises(ModelFileError, match=r"weights_1 has shape \(13, 1\).*expected \(12, 1\)"):
        load_model(path)
    path = save_model(tmp_path / "model.npz", net)
    rewrite(path, weights_1=None)
    with zipfile.ZipFile(path) as archive:
        assert "weights_1.npy" not in archive.namelist()
    with pytest.raises(ModelFileError, match="missing weights_1"):
        load_model(path)
