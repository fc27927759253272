"""Run parameters: one source of truth (RunConfig), bounds, device strings, and the checks made before a run."""
from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from ua_helpers import cli
from ua_helpers.runs import sweepfile
from ua_helpers._io import atomic_write_json
from ua_helpers.runs.config import MAX_RESAMPLES, MIN_RESAMPLES, MIN_RUN_PAIRS, ParameterError, RunConfig, effective_knn_k, preflight

REPO = Path(__file__).resolve().parents[2]
FIELDS = [f.name for f in fields(RunConfig)]
#: Every field but run_dir, which `ua-book run` takes as --run-dir and a sweep sets to <root>/<name>.
RUN_PARAMETERS = [name for name in FIELDS if name != "run_dir"]


# --------------------------------------------------------------------------- one source of truth
def test_every_field_reads_its_default_back_from_the_command_line():
    """``-p NAME str(default)`` gives the default back, for every field: the CLI knows every parameter."""
    default = RunConfig().to_parameters()
    pairs = [[name, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
             for name, value in default.items()]
    assert RunConfig.from_mapping(cli._parse_params(pairs)).to_parameters() == default


def test_the_cli_help_lists_every_parameter():
    run = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["run"]._actions
               if a.dest == "parameter")
    listed = re.findall(r"(\w+) \(", run.help.split("Names (defaults):")[1])
    assert listed == RUN_PARAMETERS


def test_sweep_keys_are_the_run_parameters():
    assert list(sweepfile.PARAMETER_KEYS) == RUN_PARAMETERS


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_sweep_files_are_valid(path):
    parsed = sweepfile.load_sweep(path)
    assert parsed.entries and all(set(e.params) == set(RUN_PARAMETERS) for e in parsed.entries)


def test_the_example_sweep_file_documents_every_parameter():
    """The comment of examples/sweep-tiny.yaml that lists what ``defaults`` may set names every parameter."""
    text = (REPO / "examples" / "sweep-tiny.yaml").read_text(encoding="utf-8")
    block = re.search(r"#\s+defaults\s+parameters every entry gets.*?\((.*?)\)", text, re.S)
    assert block, "the 'defaults' comment of sweep-tiny.yaml is gone"
    listed = [w.strip(" #\n") for w in block.group(1).split(",")]
    assert sorted(listed) == sorted(RUN_PARAMETERS)


# --------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("name", ["n_bootstrap", "n_permutations"])
def test_resample_counts_are_bounded(name):
    assert getattr(RunConfig.from_mapping({name: str(MIN_RESAMPLES)}), name) == MIN_RESAMPLES
    with pytest.raises(ParameterError, match=rf"{name} must be at least 1,000; got 999 .*allow_low_precision"):
        RunConfig.from_mapping({name: MIN_RESAMPLES - 1})
    with pytest.raises(ParameterError, match=rf"{name} must be at least 1,000; got 1 "):
        RunConfig(**{name: 1})  # direct construction is checked too
    low = RunConfig.from_mapping({name: "1", "allow_low_precision": "true"})
    assert getattr(low, name) == 1 and low.allow_low_precision is True
    with pytest.raises(ParameterError, match=rf"{name} must be at least 1; got 0"):
        RunConfig.from_mapping({name: 0, "allow_low_precision": True})
    for flag in (False, True):
        with pytest.raises(ParameterError, match=rf"{name} must be at most 1,000,000"):
            RunConfig.from_mapping({name: MAX_RESAMPLES + 1, "allow_low_precision": flag})
    assert getattr(RunConfig.from_mapping({name: MAX_RESAMPLES}), name) == MAX_RESAMPLES


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:12"])
def test_valid_devices(device):
    assert RunConfig.from_mapping({"device": device}).device == device


@pytest.mark.parametrize("device", ["cuda:banana", "cuda:", "cuda:-1", "cuda0", "gpu", "CPU", "cuda:1:2", "", 0])
def test_invalid_devices_are_refused(device):
    with pytest.raises(ParameterError, match="device must be 'auto', 'cpu', 'cuda', 'cuda:N'"):
        RunConfig.from_mapping({"device": device})


def test_allow_low_precision_reads_command_line_booleans():
    assert RunConfig.from_mapping({"allow_low_precision": "yes"}).allow_low_precision is True
    assert RunConfig.from_mapping({"allow_low_precision": "0"}).allow_low_precision is False
    with pytest.raises(ParameterError, match="allow_low_precision must be true or false"):
        RunConfig.from_mapping({"allow_low_precision": "maybe"})


# --------------------------------------------------------------------------- before any notebook runs
def test_effective_knn_k_is_the_seeds_clamp():
    assert effective_knn_k(10, 230) == 10 and effective_knn_k(10, 5) == 4 and effective_knn_k(50, 12) == 11


def test_preflight_records_effective_values(tiny_model_dir, small_pairs_path):
    cfg = RunConfig.from_mapping({"model": str(tiny_model_dir), "dataset": str(small_pairs_path), "knn_k": 50,
                                  "layers": "all"})
    effective = preflight(cfg)
    assert {k: effective[k] for k in ("n_pairs", "num_layers", "layers", "knn_k")} == \
        {"n_pairs": 12, "num_layers": 4, "layers": [0, 1, 2, 3, 4], "knn_k": 11}
    d_model = effective["d_model"]
    # The hidden states kept: 2 sides x 5 layers x 12 pairs x d_model float32 values.
    assert effective["estimate"]["embeddings_bytes"] == 2 * 5 * 12 * d_model * 4
    assert effective["estimate"]["extraction_s"] > 0 and effective["duplicate_pairs"] == []


def test_preflight_refuses_what_would_not_fit_in_memory_unless_allowed(tiny_model_dir, small_pairs_path,
                                                                         monkeypatch):
    from ua_helpers.runs import config

    cfg = RunConfig.from_mapping({"model": str(tiny_model_dir), "dataset": str(small_pairs_path), "layers": "all"})
    need = preflight(cfg)["estimate"]["embeddings_bytes"]
    monkeypatch.setattr(config, "machine_memory", lambda: int(need) - 1)
    with pytest.raises(ParameterError, match=r"dataset: 12 pairs x 5 layers x d_model \d+ need .* GB for the hidden "
                                             r"states alone, more than this machine's .*--allow-large"):
        preflight(cfg)
    assert preflight(cfg, check_memory=False)["n_pairs"] == 12


def test_resource_estimate_scales_with_pairs_layers_and_width():
    from ua_helpers.runs.config import resource_estimate

    # The example: 403,646 pairs, 9 layers of width 576 hold 16.7 GB of float32 hidden states.
    assert resource_estimate(403_646, 9, 576, 30, 1)["embeddings_bytes"] / 1e9 == pytest.approx(16.74, abs=0.01)
    one = resource_estimate(100, 3, 64, 4, 1000, cores=1)
    assert resource_estimate(100, 3, 64, 4, 2000, cores=1)["extraction_s"] == pytest.approx(2 * one["extraction_s"])
    assert resource_estimate(100, 3, 64, 4, 1000, cores=2)["extraction_s"] == pytest.approx(one["extraction_s"] / 2)


def test_duplicate_pairs_are_reported_with_their_indices(tiny_model_dir, tmp_path):
    from ua_helpers.runs import rundir

    pairs = [["One statement here", "Another one here"], ["A third one", "A fourth one"],
             ["One statement here", "Another one here"], ["A fifth one", "A sixth one"],
             ["A third one", "A fourth one"]]
    path = tmp_path / "dups.json"
    path.write_text(json.dumps({"c": {"pairs": pairs}}))
    effective = preflight(RunConfig.from_mapping({"model": str(tiny_model_dir), "dataset": str(path)}))
    assert effective["duplicate_pairs"] == [[0, 2], [1, 4]]
    said = []
    rundir._say_estimate(effective, said.append)
    assert said == ["[ua-book] warning: the dataset holds 2 exact duplicate pairs (pair 2 repeats 0, 4 repeats 1); "
                    "each counts as independent evidence in every CI"]


def test_preflight_refuses_too_few_pairs(tiny_model_dir, tmp_path):
    few = tmp_path / "three.json"
    few.write_text(json.dumps({"c": {"pairs": [["One statement", "Another one"], ["A third", "A fourth"],
                                               ["A fifth", "A sixth"]]}}))
    cfg = RunConfig.from_mapping({"model": str(tiny_model_dir), "dataset": str(few)})
    with pytest.raises(ParameterError, match=f"dataset: 3 pairs; the analysis needs at least {MIN_RUN_PAIRS}"):
        preflight(cfg)


def test_preflight_refuses_one_token_statements_and_a_dataset_without_roles_for_by_role(tiny_model_dir, tmp_path):
    from ua_helpers.inputs.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    short = next(w for w in ("a", "A", ".", "x") if len(tokenizer(w)["input_ids"]) == 1)
    pairs = [["One statement here", "Another one here"], ["A third one", "A fourth one"],
             ["A fifth one", "A sixth one"], ["A seventh one", short]]
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"c": {"pairs": pairs}}))
    cfg = RunConfig.from_mapping({"model": str(tiny_model_dir), "dataset": str(path)})
    with pytest.raises(ParameterError, match=r"dataset: statement B of pair 3 .* has 1 token"):
        preflight(cfg)
    by_role = RunConfig.from_mapping({"model": str(tiny_model_dir), "dataset": str(path), "orientation": "by-role"})
    with pytest.raises(ParameterError, match="dataset: .*'roles'"):
        preflight(by_role)


def test_written_files_get_the_umask_permissions(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        path = atomic_write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------- representation and prefix
def test_representation_and_prefix_are_validated():
    cfg = RunConfig.from_mapping({"representation": "random-tokens", "prefix": "bos"})
    assert (cfg.representation, cfg.prefix) == ("random-tokens", "bos")
    assert (RunConfig().representation, RunConfig().prefix) == ("hidden-states", "none")  # the seed's
    with pytest.raises(ParameterError, match="representation must be one of"):
        RunConfig.from_mapping({"representation": "embeddings"})
    with pytest.raises(ParameterError, match="prefix must be one of"):
        RunConfig.from_mapping({"prefix": "eos"})


def test_preflight_refuses_a_bos_prefix_without_a_bos_token(tiny_model_dir, small_pairs_path, monkeypatch):
    from types import SimpleNamespace

    from ua_helpers.inputs import models

    cfg = RunConfig.from_mapping({"model": str(tiny_model_dir), "dataset": str(small_pairs_path), "prefix": "bos"})
    assert preflight(cfg)["n_pairs"] == 12
    monkeypatch.setattr(models, "load_tokenizer", lambda *a, **k: SimpleNamespace(bos_token_id=None,
                                                                                  eos_token_id=None))
    with pytest.raises(ParameterError, match="^prefix: .*neither"):
        preflight(cfg)


# --------------------------------------------------------------------------- the recorded token check
@pytest.fixture
def gguf_run(tmp_path, monkeypatch, tiny_model_dir, small_pairs_path):
    """A GGUF model (the tiny one, converted into a fresh cache), its config, and a counter of tokenizer loads."""
    from tiny_models import stub_gguf

    from ua_helpers.inputs import models

    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path / "cache"))
    gguf = stub_gguf(tmp_path, monkeypatch, tiny_model_dir)
    models._gguf_converted_dir(gguf)  # as the first load of the model would
    loads = []
    real = models.load_tokenizer
    monkeypatch.setattr(models, "load_tokenizer", lambda *a, **k: loads.append(a) or real(*a, **k))
    cfg = RunConfig.from_mapping({"model": str(gguf), "dataset": str(small_pairs_path)})
    return gguf, cfg, loads


def _records(tmp_path) -> list[Path]:
    return sorted((tmp_path / "cache" / "checks").glob("tokens-*.json"))


def test_a_passed_token_check_is_recorded_and_stands_for_it(gguf_run, tmp_path):
    """The first preflight loads the tokenizer and records the check; the second reads the record: the same
    values, no tokenizer loaded."""
    gguf, cfg, loads = gguf_run
    first = preflight(cfg)
    assert len(loads) == 1 and len(_records(tmp_path)) == 1
    record = json.loads(_records(tmp_path)[0].read_text())
    assert record["n_tokens"] == first["estimate"]["extraction_flops"] / (24 * 4 * 64 ** 2)  # 4 blocks, d 64
    assert preflight(cfg) == first and len(loads) == 1


def _edit_dataset(cfg, tmp_path):
    pairs = json.loads(Path(cfg.dataset).read_text())
    category = next(iter(pairs))
    pairs[category]["pairs"][0][0] += " again"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(pairs))
    return RunConfig.from_mapping({**cfg.to_parameters(), "dataset": str(path)})


def _edit_tokenizer_file(cfg, tmp_path):
    """A tokenizer file of the conversion edited (its record no longer matches): converted again, checked again."""
    from ua_helpers.inputs import models

    config = models._converted_target(Path(cfg.model)) / "tokenizer_config.json"
    config.write_text(config.read_text() + " ")
    return cfg


def _new_gguf(cfg, tmp_path):
    """Other GGUF bytes at the same path, converted: another conversion, another tokenizer."""
    from ua_helpers.inputs import models

    Path(cfg.model).write_bytes(b"GGUF" + bytes(61))
    models._gguf_converted_dir(Path(cfg.model))
    return cfg


def _new_library_version(cfg, tmp_path, monkeypatch):
    import importlib.metadata as md

    real = md.version
    monkeypatch.setattr(md, "version", lambda dist: "99.0" if dist == "tokenizers" else real(dist))
    return cfg


def _edited_check_code(cfg, tmp_path, monkeypatch):
    """The module that tokenizes the statements, edited (a copy with one more line)."""
    from ua_helpers.inputs import batching

    copy = tmp_path / "code" / "batching.py"
    copy.parent.mkdir()
    copy.write_bytes(Path(batching.__file__).read_bytes() + b"# edited\n")
    monkeypatch.setattr(batching, "__file__", str(copy))
    return cfg


@pytest.mark.parametrize("change", [
    lambda cfg, tmp_path, mp: _edit_dataset(cfg, tmp_path),
    lambda cfg, tmp_path, mp: RunConfig.from_mapping({**cfg.to_parameters(), "prefix": "bos"}),
    lambda cfg, tmp_path, mp: _edit_tokenizer_file(cfg, tmp_path),
    lambda cfg, tmp_path, mp: _new_gguf(cfg, tmp_path),
    _new_library_version,
    _edited_check_code,
], ids=["dataset", "prefix", "tokenizer-file", "gguf", "library-version", "code"])
def test_any_changed_input_checks_the_statements_again(gguf_run, tmp_path, monkeypatch, change):
    import warnings

    _, cfg, loads = gguf_run
    preflight(cfg)
    assert len(loads) == 1
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"rebuilding the converted model")  # the edited file
        changed = change(cfg, tmp_path, monkeypatch)
        preflight(changed)
    assert len(loads) == 2
    preflight(changed)  # recorded in turn
    assert len(loads) == 2


@pytest.mark.parametrize("part", ["format", "model", "revision", "tokenizer", "statements", "n_pairs", "orientation",
                                  "prefix", "versions", "code"])
def test_a_record_stands_only_for_its_whole_key(gguf_run, monkeypatch, part):
    """Every part of the key is compared: a key that differs in any one part (here: changed where the key is
    computed) finds no record and checks again."""
    from ua_helpers.runs import config

    from ua_helpers.inputs import data

    _, cfg, loads = gguf_run
    key = config.token_check_key(cfg, data.load_pairs(cfg.dataset))
    assert set(key) == {"format", "model", "revision", "tokenizer", "statements", "n_pairs", "orientation",
                        "prefix", "versions", "code"}
    preflight(cfg)
    real = config.token_check_key
    monkeypatch.setattr(config, "token_check_key", lambda *a: {**real(*a), part: "changed"})
    preflight(cfg)
    assert len(loads) == 2


def test_a_failed_check_is_never_recorded_and_a_record_is_read_only_for_its_key(gguf_run, tmp_path):
    from ua_helpers.inputs.models import load_tokenizer

    gguf, cfg, loads = gguf_run
    tokenizer = load_tokenizer(str(gguf))
    short = next(w for w in ("a", "A", ".", "x") if len(tokenizer(w)["input_ids"]) == 1)
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"c": {"pairs": [["One statement here", "Another one here"], ["A third one", short],
                                                ["A fifth one", "A sixth one"], ["A seventh one", "An eighth"]]}}))
    bad = RunConfig.from_mapping({**cfg.to_parameters(), "dataset": str(path)})
    for _ in range(2):
        with pytest.raises(ParameterError, match=r"dataset: statement B of pair 1 .* has 1 token"):
            preflight(bad)
    assert _records(tmp_path) == []
    preflight(cfg)
    (record_path,) = _records(tmp_path)
    record = json.loads(record_path.read_text())
    record["key"]["prefix"] = "bos"  # a record whose own key differs (as a colliding file name would)
    record_path.write_text(json.dumps(record))
    calls = len(loads)
    preflight(cfg)
    assert len(loads) == calls + 1


def test_a_local_directory_or_hub_model_is_checked_every_time(tiny_model_dir, small_pairs_path):
    from ua_helpers.runs import config
    from ua_helpers.inputs import data

    pairs = data.load_pairs(small_pairs_path)
    for model in (str(tiny_model_dir), "EleutherAI/pythia-70m"):
        assert config.token_check_key(RunConfig.from_mapping({"model": model}), pairs) is None
