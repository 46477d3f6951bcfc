"""Choosing launch configs: row buckets, the persistent cache, shipped tuned tables, warm-up.

On a CPU the cache logic runs with fake benchmarkers (the real one needs a GPU): a fake returns a
made-up time per config, so the tests know which config must win.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import kernelgen
from kernelgen import registry, tuning
from kernelgen.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _ignoring_shipped_tables(tuner, monkeypatch):
    """The tuner, made to skip the shipped generated/ tables (an H100 has one, and it would answer
    before any tuning): the tests that use it are about tuning, so only tables of other folders (the
    tabled_spec fixture's) are read."""
    shipped, table_entry = registry.shipped_dir().resolve(), tuner._table_entry
    monkeypatch.setattr(tuner, "_table_entry", lambda folder, *rest: None if Path(folder).resolve().parent == shipped
                        else table_entry(folder, *rest))
    return tuner


@pytest.fixture
def fresh_tuner(tmp_path, monkeypatch):
    """A tuner with an empty cache in tmp_path and a fake benchmarker that records what it ran."""
    monkeypatch.delenv("KERNELGEN_AUTOTUNE", raising=False)
    seen = []

    def bench(fn):
        fn()
        config = seen[-1]
        return 1.0 if (config.block_rows, config.num_warps) == (32, 8) else 2.0 + config.block_rows / 100

    tuner = _ignoring_shipped_tables(tuning.Tuner(tuning.TuneCache(tmp_path / "cache"), benchmark=bench), monkeypatch)
    real_run, real_launch = registry.BoundKernel.run, registry.BoundKernel.launch

    def recording_run(self, config, n_rows, bucket, dtype, args):  # benchmarking runs
        seen.append(config)
        return real_run(self, config, n_rows, bucket, dtype, args)

    def recording_launch(self, n_rows, dtype, device, *args):  # the launch itself
        real_launch(self, n_rows, dtype, device, *args)
        seen.append(self.last_config(n_rows, dtype))

    monkeypatch.setattr(registry.BoundKernel, "run", recording_run)
    monkeypatch.setattr(registry.BoundKernel, "launch", recording_launch)
    monkeypatch.setattr(tuning, "TUNER", tuner)
    tuner.seen = seen
    return tuner


def test_row_buckets_are_powers_of_two_capped_at_2_to_the_20():
    assert [registry.row_bucket(n) for n in (0, 1, 2, 3, 8, 9, 1000, 1024, 1025)] == [1, 1, 2, 4, 8, 16, 1024, 1024,
                                                                                     2048]
    assert registry.row_bucket(5_000_000) == 1 << 20


def test_tuning_happens_once_per_bucket_and_dtype(fresh_tuner, device, gen):
    q = kernelgen.quantizer("tq4", 64, device=device)
    space = len(q._kernels["compress"].configs)
    q.compress(torch.randn(100, 64, generator=gen).to(device))
    assert fresh_tuner.benchmark_calls == space
    q.compress(torch.randn(120, 64, generator=gen).to(device))  # same bucket (128)
    q.compress(torch.randn(97, 64, generator=gen).to(device))
    assert fresh_tuner.benchmark_calls == space
    assert fresh_tuner.seen[-1] == tuning.LaunchConfig(32, 8, 1)
    q.compress(torch.randn(300, 64, generator=gen).to(device))  # bucket 512
    q.compress(torch.randn(100, 64, generator=gen).to(device).half())  # another dtype
    assert fresh_tuner.benchmark_calls == 3 * space
    entries = json.loads(fresh_tuner.cache.path.read_text())["entries"]
    assert len(entries) == 3 and all(v == {"block_rows": 32, "num_warps": 8, "num_stages": 1}
                                     for v in entries.values())
    assert any("tq4_d64_compress@" in k and k.endswith("|128|float32") for k in entries)


def test_tuned_results_still_compute_the_right_answer(fresh_tuner, monkeypatch, device, gen):
    q = kernelgen.quantizer("tq4", 96, device=device)
    x = torch.randn(77, 96, generator=gen).to(device)
    tuned = q.compress(x)
    assert fresh_tuner.seen[-1] == tuning.LaunchConfig(32, 8, 1)
    monkeypatch.setenv("KERNELGEN_AUTOTUNE", "0")
    monkeypatch.setattr(tuning, "TUNER", tuning.Tuner(tuning.TuneCache(fresh_tuner.cache.folder)))
    default = kernelgen.quantizer("tq4", 96, device=device).compress(x)
    assert fresh_tuner.seen[-1] == tuning.LaunchConfig(64, 4, 1)
    assert torch.equal(tuned[0], default[0]) and torch.equal(tuned[1], default[1])


DRIVER = textwrap.dedent("""
    import os, sys, time, json
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch, kernelgen
    from kernelgen import tuning
    calls = []
    def bench(fn):
        calls.append(1)
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
        return 1.0 if len(calls) == 3 else 2.0  # the third config of the search space wins
    tuning.TUNER.benchmark = bench
    q = kernelgen.quantizer("tq4", 64, device="cpu")
    rows = int(sys.argv[1])
    q.compress(torch.randn(rows, 64))
    key = tuning.TUNER.cache_key(q._kernels["compress"].id, kernelgen.registry.row_bucket(rows), "float32",
                                 torch.device("cpu"))
    print(json.dumps({"calls": len(calls), "config": tuning.TUNER.cache.get(key)}))
""")


def _driver(tmp_path, rows, extra_env=None, wait=True):
    env = dict(os.environ, KERNELGEN_CACHE_DIR=str(tmp_path / "cache"), TRITON_INTERPRET="1", **(extra_env or {}))
    env.pop("KERNELGEN_AUTOTUNE", None)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(rows)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def test_a_second_process_launches_from_the_cache_without_benchmarking(tmp_path):
    first, _ = _driver(tmp_path, 100)
    assert first["calls"] == 6 and first["config"] == {"block_rows": 32, "num_warps": 4, "num_stages": 1}
    second, _ = _driver(tmp_path, 100)
    assert second == {"calls": 0, "config": first["config"]}


@pytest.mark.parametrize("content", ["{not json", '{"format_version": 1, "entr', '{"format_version": 99, "entries": {}}',
                                     "[1, 2]"])
def test_a_broken_or_foreign_cache_file_is_ignored_with_one_warning_and_replaced(tmp_path, content):
    (tmp_path / "cache").mkdir()
    path = tmp_path / "cache" / tuning.CACHE_FILE
    path.write_text(content)
    result, err = _driver(tmp_path, 40)
    assert result["calls"] == 6
    assert err.count("ignoring tuning cache") == 1
    data = json.loads(path.read_text())
    assert data["format_version"] == tuning.FORMAT_VERSION and len(data["entries"]) == 1


def test_processes_tuning_at_once_leave_a_valid_cache_with_every_result(tmp_path):
    procs = [_driver(tmp_path, rows, {"FAKE_SLEEP": "0.05"}, wait=False) for rows in (3, 20, 100, 700)]
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    data = json.loads((tmp_path / "cache" / tuning.CACHE_FILE).read_text())
    buckets = sorted(int(k.split("|")[-2]) for k in data["entries"])
    assert buckets == [4, 32, 128, 1024]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".tmp"]


def test_an_unwritable_cache_folder_falls_back_to_memory_with_a_warning(tmp_path, monkeypatch, device, gen):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    tuner = _ignoring_shipped_tables(tuning.Tuner(tuning.TuneCache(blocker / "cache"), benchmark=lambda fn: 1.0),
                                     monkeypatch)
    monkeypatch.setattr(tuning, "TUNER", tuner)
    monkeypatch.delenv("KERNELGEN_AUTOTUNE", raising=False)
    q = kernelgen.quantizer("tq4", 64, device=device)
    with pytest.warns(RuntimeWarning, match="cannot write the tuning cache.*memory only"):
        q.compress(torch.randn(5, 64, generator=gen).to(device))
    calls = tuner.benchmark_calls
    q.compress(torch.randn(6, 64, generator=gen).to(device))
    q.compress(torch.randn(9, 64, generator=gen).to(device))  # bucket 16: tunes, no second warning
    assert tuner.benchmark_calls == 2 * calls


# -- shipped tables ----------------------------------------------------------------------------------

@pytest.fixture
def tabled_spec(tmp_path):
    data = yaml.safe_load((ROOT / "specs" / "tq4.yaml").read_text())
    data.update(name="tqtable", head_dims=[64])
    spec = tmp_path / "tqtable.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "kernels"
    assert main(["build", str(spec), "--out", str(out)]) == 0
    registry.add_kernel_path(out)
    yield out / "tqtable"
    registry._added_paths.remove(out.resolve())


def _write_table(folder, device_field, entries):
    name, cap = "cpu", "0.0"
    tuning.write_json_atomic(folder / "tuned" / f"{tuning.device_slug(name, cap)}.json",
                             {"format_version": 1, "device": device_field, "capability": cap, "triton": "3.6.0",
                              "command": "test", "entries": entries})


def _table_case(folder, fresh_tuner, device_field, *, sha=None, config=None):
    q = kernelgen.quantizer("tqtable", 64, device="cpu")
    kid = q._kernels["compress"].id
    key = tuning.table_key(tuning.KernelId(kid.name, sha or kid.module_sha256), 64, "float32")
    _write_table(folder, device_field, {key: config or {"block_rows": 16 * 2, "num_warps": 4, "num_stages": 1}})
    q.compress(torch.randn(50, 64))
    return fresh_tuner.benchmark_calls, fresh_tuner.seen[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fake table is written for the CPU device")
def test_a_shipped_table_for_this_device_means_no_tuning(tabled_spec, fresh_tuner):
    calls, used = _table_case(tabled_spec, fresh_tuner, "cpu")
    assert calls == 0 and used == tuning.LaunchConfig(32, 4, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fake table is written for the CPU device")
def test_a_table_for_another_device_is_ignored(tabled_spec, fresh_tuner):
    with pytest.warns(RuntimeWarning, match="made on NVIDIA H100"):
        calls, used = _table_case(tabled_spec, fresh_tuner, "NVIDIA H100 80GB HBM3")
    assert calls == 6 and used == tuning.LaunchConfig(32, 8, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fake table is written for the CPU device")
def test_a_table_entry_for_another_kernel_hash_is_not_applied(tabled_spec, fresh_tuner):
    calls, used = _table_case(tabled_spec, fresh_tuner, "cpu", sha="0" * 64)
    assert calls == 6 and used == tuning.LaunchConfig(32, 8, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fake table is written for the CPU device")
def test_a_table_config_outside_the_search_space_is_not_applied(tabled_spec, fresh_tuner):
    calls, used = _table_case(tabled_spec, fresh_tuner, "cpu", config={"block_rows": 256, "num_warps": 4,
                                                                        "num_stages": 1})
    assert calls == 6 and used == tuning.LaunchConfig(32, 8, 1)


# -- ahead of time, and where nothing may tune -----------------------------------------------------

def test_no_benchmarking_under_the_interpreter_by_default(monkeypatch, device, gen):
    if device == "cuda":
        pytest.skip("the interpreter runs only without a GPU here")
    tuner = tuning.Tuner(tuning.TuneCache(Path("/nonexistent-never-written")))
    monkeypatch.setattr(tuning, "TUNER", tuner)
    monkeypatch.delenv("KERNELGEN_AUTOTUNE", raising=False)
    q = kernelgen.quantizer("tq4", 64, device="cpu")
    q.compress(torch.randn(10, 64, generator=gen))
    assert tuner.benchmark_calls == 0
    assert tuner.choose(None, q._kernels["compress"].id, q._kernels["compress"].configs, 16, "float32",
                        torch.device("cpu"), True, lambda c: None) == tuning.LaunchConfig(64, 4, 1)


def test_warmup_tunes_every_bucket_so_later_calls_never_tune(fresh_tuner, device, gen):
    q = kernelgen.quantizer("tq4", 64, device=device)
    prepared = q.warmup(max_rows=40, dtypes=[torch.float16])
    assert prepared == 7 * 3  # buckets 1, 2, 4, ..., 64; three ops
    calls = fresh_tuner.benchmark_calls
    assert calls == prepared * len(q._kernels["compress"].configs)
    for rows in (1, 3, 17, 40, 64):
        packed, norms = q.compress(torch.randn(rows, 64, generator=gen).to(device).half())
        q.decompress(packed, norms)
        q.decompress(packed, norms, rotated=True)
    assert fresh_tuner.benchmark_calls == calls


def test_warmup_rejects_bad_arguments():
    q = kernelgen.quantizer("tq4", 64, device="cpu")
    with pytest.raises(ValueError, match="max_rows must be a positive int"):
        q.warmup(0)
    with pytest.raises(ValueError, match="ops must be among"):
        q.warmup(8, ops=["squash"])
    with pytest.raises(TypeError, match="dtype must be one of"):
        q.warmup(8, dtypes=[torch.int8])


def test_list_shows_every_variant_and_its_tuning():
    result = subprocess.run([sys.executable, "-m", "kernelgen.cli", "list"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["spec", "head"]
    row = next(line for line in lines if line.split()[:2] == ["tq4", "128"])
    assert "compress, decompress, decompress_rotated" in row and "float16, bfloat16, float32" in row
    assert len(lines) == 1 + sum(len(d) for d in kernelgen.available().values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_tune_and_bench_need_a_gpu():
    for command in (["tune", "tq4"], ["bench"]):
        result = subprocess.run([sys.executable, "-m", "kernelgen.cli", *command], capture_output=True, text=True)
        assert result.returncode == 2 and "needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def test_tune_and_bench_name_an_unknown_spec_and_list_the_known_ones(capsys):
    for command in (["tune", "tq9"], ["bench", "--specs", "tq4", "tq9"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "no generated kernels for spec 'tq9'" in err and "tq4" in err and "'tq4'" not in err


@pytest.mark.parametrize("shard", ["2/2", "a/4", "1", "3/x"])
def test_tune_rejects_a_malformed_shard(shard, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "tq4", "--shard", shard])
    assert exit_info.value.code == 2 and "expected I/N with 0 <= I < N" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_after_warmup_calls_replay_correctly_in_a_cuda_graph(fresh_tuner, gen):
    q = kernelgen.quantizer("tq4", 128, device="cuda")
    q.warmup(max_rows=64, dtypes=[torch.float16])
    x = torch.randn(48, 128, generator=gen).cuda().half()
    packed = torch.empty(48, 64, dtype=torch.uint8, device="cuda")
    norms = torch.empty(48, 1, device="cuda")
    out = torch.empty(48, 128, dtype=torch.float16, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        q.compress(x, out=(packed, norms))
        q.decompress(packed, norms, out=out)
    for _ in range(3):
        x.copy_(torch.randn(48, 128, generator=gen).half())
        graph.replay()
        torch.cuda.synchronize()
        ref_packed, ref_norms = q.compress(x)
        assert torch.equal(packed, ref_packed) and torch.equal(norms, ref_norms)
        assert torch.equal(out, q.decompress(ref_packed, ref_norms))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_a_call_that_needs_tuning_during_capture_raises(fresh_tuner):
    q = kernelgen.quantizer("tq4", 128, device="cuda")
    x = torch.randn(48, 128, device="cuda")
    q.warmup(max_rows=8)  # compiled, but bucket 64 was never tuned
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(tuning.TuningDuringCapture, match="call Quantizer.warmup"):
        with torch.cuda.graph(graph):
            q.compress(x)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fake table is written for the CPU device")
def test_a_bucket_the_table_lacks_uses_the_nearest_tuned_bucket(tabled_spec, fresh_tuner):
    q = kernelgen.quantizer("tqtable", 64, device="cpu")
    kid = q._kernels["compress"].id
    _write_table(tabled_spec, "cpu", {
        tuning.table_key(kid, 8, "float32"): {"block_rows": 32, "num_warps": 4, "num_stages": 1},
        tuning.table_key(kid, 2048, "float32"): {"block_rows": 128, "num_warps": 8, "num_stages": 1},
        "garbage key": {"block_rows": 16}})
    q.compress(torch.randn(3, 64))  # bucket 4: nearest is 8
    assert fresh_tuner.seen[-1] == tuning.LaunchConfig(32, 4, 1)
    q.compress(torch.randn(700, 64))  # bucket 1024: nearest is 2048
    assert fresh_tuner.seen[-1] == tuning.LaunchConfig(128, 8, 1)
    assert fresh_tuner.benchmark_calls == 0
    q.compress(torch.randn(3, 64).half())  # a dtype the table lacks is tuned
    assert fresh_tuner.benchmark_calls == len(q._kernels["compress"].configs)


def test_tune_merges_tables_per_head_dim_and_drops_entries_of_replaced_kernels(tmp_path):
    path = tmp_path / "tuned" / "gpu-sm90.json"
    config = {"block_rows": 64, "num_warps": 4, "num_stages": 1}
    assert tuning.merge_table(path, "GPU", "9.0", {"k_d64_compress|old|8|float16": config,
                                                   "k_d64_compress|cur|8|float16": config},
                              {("k_d64_compress", "old"), ("k_d64_compress", "cur")}, "kernelgen tune t") == 2
    # the d64 kernel is rebuilt (hash 'old' is gone), then a d128 kernel is tuned
    assert tuning.merge_table(path, "GPU", "9.0", {"k_d128_compress|new|8|float16": config},
                              {("k_d64_compress", "cur"), ("k_d128_compress", "new")}, "kernelgen tune t") == 2
    data = json.loads(path.read_text())
    assert data["device"] == "GPU" and data["capability"] == "9.0" and data["command"] == "kernelgen tune t"
    assert sorted(data["entries"]) == ["k_d128_compress|new|8|float16", "k_d64_compress|cur|8|float16"]
    # a table of another device at that path is replaced, not merged
    assert tuning.merge_table(path, "Other GPU", "9.0", {"k_d128_compress|new|8|float16": config},
                              {("k_d128_compress", "new")}, "kernelgen tune t") == 1


def test_compile_only_plans_each_launch_form_of_a_config_once(monkeypatch):
    """`kernelgen tune --compile-only`: every config at every compile-time form the buckets give it
    (compress: 1, 4 and 8 row blocks for 16-bit rows, 16 instead of 8 at D=256 and 2 programs a block at
    the small buckets there, one for fp32; D=256 decompress: the split, then 2 and 4 row blocks a
    program), each once, at the first bucket that takes it."""
    buckets = [8, 2048, 65536, 1 << 20]
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: False)  # the TMA forms: below
    compress = registry.BoundKernel(registry.load_variant("tq4", 128), "compress")
    space = [tuning.LaunchConfig.of(c) for c in compress.configs]
    plan = compress.launch_forms(space, "float16", buckets)
    forms = [(config, compress.meta(config, "float16", bucket)["ROW_BLOCKS"]) for config, bucket in plan]
    assert sorted(forms, key=str) == sorted([(c, rb) for c in space for rb in (1, 4, 8)], key=str)
    assert {bucket for _, bucket in plan} == {8, 65536, 1 << 20}
    assert compress.launch_forms(space, "float32", buckets) == [(c, 8) for c in space]
    wide = registry.BoundKernel(registry.load_variant("tq4", 256), "decompress")
    wide_space = [tuning.LaunchConfig.of(c) for c in wide.configs]
    plan = wide.launch_forms(wide_space, "float16", buckets)
    forms = [(str(c), wide.meta(c, "float16", b)["COLUMN_SPLIT"], wide.meta(c, "float16", b)["ROW_BLOCKS"])
             for c, b in plan]
    assert sorted(forms) == sorted((str(c), split, rb) for c in wide_space for split, rb in
                                   ((True, 1), (False, 2), (False, 4)))
    # D=256 compress: 16 row blocks at 2^20 (registry.WIDE_COMPRESS_ROW_BLOCKS) instead of 8, and its
    # slot columns split over 2 programs up to 2,048 rows (registry.SLOT_SPLIT_RULE)
    wide_compress = registry.BoundKernel(registry.load_variant("tq4", 256), "compress")
    compress_space = [tuning.LaunchConfig.of(c) for c in wide_compress.configs]
    plan = wide_compress.launch_forms(compress_space, "float16", buckets)
    metas = [(str(c), wide_compress.meta(c, "float16", b)) for c, b in plan]
    forms = [(c, meta["ROW_BLOCKS"], meta["SLOT_SPLIT"]) for c, meta in metas]
    assert sorted(forms) == sorted((str(c), rb, split) for c in compress_space
                                   for rb, split in ((1, 2), (4, 1), (16, 1)))
    # on a GPU with TMA, tq4 D=128 compress at 2^20 takes the TMA loop (registry.TMA_COMPRESS) instead of 8 blocks
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: True)
    plan = compress.launch_forms(space, "float16", buckets)
    forms = [(str(c), compress.meta(c, "float16", b)["ROW_BLOCKS"], compress.meta(c, "float16", b)["TMA_STAGES"])
             for c, b in plan]
    assert sorted(forms) == sorted((str(c), rb, stages) for c in space for rb, stages in ((1, 0), (4, 0), (1, 3)))
