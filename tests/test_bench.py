import json

from conftest import run_module


def test_bench_quick_subset_prints_and_writes_figures(smoke_run, tfrecord_dir, raw_dir,
                                                      tmp_path):
  model_dir, _ = smoke_run
  out = tmp_path / "bench.json"
  result = run_module("fkd_tf.bench", "--what=matmul,pipeline,train,face,savedmodel,load",
                      "--calls=50", f"--tfrecord_dir={tfrecord_dir}", "--batch_size=8",
                      "--steps=2", "--seconds=0.5", f"--saved_model={model_dir}/export",
                      f"--images={raw_dir}/test", "--faces=4",
                      f"--keypoints_csv={raw_dir}/test_frames_keypoints.csv",
                      f"--json_out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.load(open(out))
  assert report["matmul_gflops"] > 0
  assert report["pipeline"]["host_decode_pad"] > 0
  rows = report["train"]
  assert {r["fed_from"] for r in rows} == {"augmented pipeline", "cached batch"}
  for row in rows:
    assert row["images_per_s"] > 0 and 0 < row["fraction_of_bound"]
    assert abs(row["train_mflop_per_image"] - 3 * 156.585984) < 1e-3
  for name in ("bytes", "bytes_with_boxes", "preprocessed"):
    figures = report["savedmodel"][name]
    assert figures["p99_ms"] >= figures["p50_ms"] > 0 and figures["batch64_ms_per_face"] > 0
  face = report["face"]
  assert face["backend"] == "litert" and face["calls"] == 3 * 4
  assert face["ratio_p50"] == face["fkd_tf_p50_ms"] / face["dlib_p50_ms"] > 0
  assert "one face, decoded image + box in, 1 thread" in result.stdout
  assert report["load"]["calls"] == 50 and report["load"]["rss_end_mb"] > 0
  assert "float32 matmul peak" in result.stdout and "of the bound" in result.stdout
