"""Spec parsing and validation: every error names the file, the field, what was given and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kernelgen.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def _base() -> dict:
    return yaml.safe_load((ROOT / "specs" / "tq4.yaml").read_text())


def _text(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert len(spec.digest()) == 64
    assert spec.autotune.configs()[0]["block_rows"] == spec.autotune.block_rows[0]


def test_tq4_spec_reproduces_turboquant_vllm_settings():
    spec = load_spec(ROOT / "specs" / "tq4.yaml")
    assert (spec.bits, spec.split, spec.rotation.kind, spec.rotation.seed) == (4, "even_odd", "haar", 42)
    assert (spec.codebook.law, spec.codebook.support_sigmas, spec.codebook.init,
            spec.codebook.max_iterations, spec.codebook.tolerance) == ("gaussian", 3.0, "uniform", 200, 1e-10)
    assert {64, 96, 128, 256} <= set(spec.head_dims)
    assert spec.dtypes == ("float16", "bfloat16", "float32")


def test_digest_ignores_formatting_but_not_meaning():
    data = _base()
    a = parse_spec(_text(data), "a.yaml")
    b = parse_spec("# a comment\n" + _text(data), "b.yaml")
    data["rotation"]["seed"] = 7
    c = parse_spec(_text(data), "c.yaml")
    assert a.digest() == b.digest() != c.digest()


def _set(path, value):
    def mutate(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return mutate


_DELETE = object()

BAD = [
    (_set(["bits"], 5), "'bits'", "got 5, allowed: 1, 2, 3, 4"),
    (_set(["bits"], "4"), "'bits'", 'got "4"'),
    (_set(["bits"], True), "'bits'", "got true"),
    (_set(["name"], _DELETE), "'name'", "missing"),
    (_set(["name"], "TQ 4"), "'name'", "lower-case"),
    (_set(["colour"], "red"), "'colour'", "unknown field"),
    (_set(["rotation", "sede"], 1), "'rotation.sede'", "unknown field"),
    (_set(["head_dims"], 128), "'head_dims'", "non-empty list"),
    (_set(["head_dims"], [64, 64]), "'head_dims'", "no repeated"),
    (_set(["head_dims"], [8]), "'head_dims'", "[16, 512]"),
    (_set(["padding"], "zero"), "'padding'", "allowed: pow2, none"),
    (_set(["split"], "halves"), "'split'", "allowed: even_odd, strided"),
    (_set(["rotation", "kind"], "hadamard"), "'rotation.kind'", "allowed: haar"),
    (_set(["rotation", "seed"], -1), "'rotation.seed'", "an integer in"),
    (_set(["rotation", "precision"], "fp8"), "'rotation.precision'", "ieee, tf32x3, tf32, fp16, or a mapping"),
    (_set(["rotation", "precision"], {"int8": "fp16"}), "'rotation.precision.int8'", "the spec's dtypes"),
    (_set(["rotation", "precision"], {"float16": "bf16"}), "'rotation.precision.float16'", "ieee, tf32x3, tf32, fp16"),
    (_set(["rotation", "precision"], {}), "'rotation.precision'", "or a mapping"),
    (_set(["rotation"], [1, 2]), "'rotation'", "expected a mapping"),
    (_set(["codebook", "law"], "laplace"), "'codebook.law'", "gaussian, beta"),
    (_set(["codebook", "max_iterations"], 0), "'codebook.max_iterations'", "[1, 100000]"),
    (_set(["codebook", "support_sigmas"], "wide"), "'codebook.support_sigmas'", "or null"),
    (_set(["dtypes"], ["float16", "int8"]), "'dtypes'", "float16, bfloat16, float32"),
    (_set(["autotune", "key"], "rows"), "'autotune.key'", "row_bucket, none"),
    (_set(["autotune", "block_rows"], [48]), "'autotune.block_rows'", "powers of two in [16, 256]"),
    (_set(["autotune", "num_warps"], [3]), "'autotune.num_warps'", "one of 1, 2, 4, 8, 16"),
    (_set(["autotune", "num_stages"], []), "'autotune.num_stages'", "non-empty list"),
]


@pytest.mark.parametrize("mutate,field,allowed", BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_bad_field_is_named_with_what_is_allowed(mutate, field, allowed):
    data = _base()
    mutate(data)
    with pytest.raises(SpecError) as info:
        parse_spec(_text(data), "specs/broken.yaml")
    message = str(info.value)
    assert message.startswith("specs/broken.yaml: field "), message
    assert field in message and allowed in message, message


def test_head_dim_that_does_not_pack_into_whole_bytes_is_rejected():
    data = _base()
    data.update(bits=3, split="strided", head_dims=[64, 100])
    with pytest.raises(SpecError, match=r"head_dims.*100.*not a multiple of 8.*multiple of 8"):
        parse_spec(_text(data), "x.yaml")


def test_unpadded_spec_rejects_non_power_of_two_head_dim():
    data = _base()
    data.update(padding="none", head_dims=[128, 96])
    with pytest.raises(SpecError, match=r"'head_dims'.*96.*padding 'none'"):
        parse_spec(_text(data), "x.yaml")


def test_even_odd_split_needs_four_bits():
    data = _base()
    data.update(bits=2)
    with pytest.raises(SpecError, match=r"'split'.*even_odd.*bits 2.*strided"):
        parse_spec(_text(data), "x.yaml")


def test_broken_yaml_names_the_line():
    text = "name: tq4\nbits: 4\nhead_dims: [64, 128\nsplit: even_odd\n"
    with pytest.raises(SpecError, match=r"^specs/x\.yaml: line \d+: not valid YAML"):
        parse_spec(text, "specs/x.yaml")


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.yaml")


def test_cli_prints_spec_error_without_traceback_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    data = _base()
    data["bits"] = 9
    bad.write_text(_text(data))
    out = tmp_path / "gen"
    result = subprocess.run([sys.executable, "-m", "kernelgen.cli", "build", str(ROOT / "specs" / "tq4.yaml"),
                             str(bad), "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}: field 'bits': got 9, allowed: 1, 2, 3, 4" in result.stderr
    assert not out.exists(), "a failed build must leave the output folder untouched"


def test_precision_is_one_value_or_a_mapping_per_dtype():
    data = _base()
    data["rotation"]["precision"] = "ieee"
    spec = parse_spec(_text(data))
    assert all(spec.rotation.precision_for(d) == "ieee" for d in spec.dtypes)
    data["rotation"]["precision"] = {"float16": "fp16"}  # dtypes left out get the default
    spec = parse_spec(_text(data))
    assert spec.rotation.precision_for("float16") == "fp16"
    assert spec.rotation.precision_for("float32") == "tf32x3"
    del data["rotation"]["precision"]
    assert parse_spec(_text(data)).rotation.precision_for("float16") == "tf32x3"
