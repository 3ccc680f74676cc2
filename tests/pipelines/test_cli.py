"""The ``luigi`` command line as users run it: exit codes, kill and rerun, the central scheduler."""
import glob
import os
import signal
import subprocess
import textwrap
import time

import pytest

from .conftest import free_port, luigi_cli, read_json, script

FAILING_MODULE = textwrap.dedent("""
    import luigi

    class Boom(luigi.Task):
        def output(self):
            return luigi.LocalTarget("boom.txt")

        def run(self):
            raise RuntimeError("boom")
""")


@pytest.mark.slow
def test_exit_codes_come_from_the_project_config_in_any_directory(tmp_path):
    """Luigi exits 0 after a failed task unless [retcode] is configured; importing pipelines brings the
    project's luigi.cfg (task_failed = 30) to any directory, and a user's own luigi.cfg still wins."""
    (tmp_path / "boom_plain.py").write_text(FAILING_MODULE)
    (tmp_path / "boom_with_pipelines.py").write_text("import pipelines  # noqa: F401\n" + FAILING_MODULE)
    env = {"PYTHONPATH": str(tmp_path)}  # for the two test modules only
    plain = luigi_cli(["--module", "boom_plain", "Boom", "--local-scheduler"], cwd=tmp_path, env_extra=env)
    if not os.path.exists("/etc/luigi/luigi.cfg"):  # a machine-wide config could set its own codes
        assert plain.returncode == 0, plain.stderr[-2000:]  # Luigi's own default: a failure looks like success
    ours = luigi_cli(["--module", "boom_with_pipelines", "Boom", "--local-scheduler"], cwd=tmp_path, env_extra=env)
    assert ours.returncode == 30, ours.stderr[-2000:]
    (tmp_path / "luigi.cfg").write_text("[retcode]\ntask_failed = 3\n")
    user = luigi_cli(["--module", "boom_with_pipelines", "Boom", "--local-scheduler"], cwd=tmp_path, env_extra=env)
    assert user.returncode == 3, user.stderr[-2000:]


@pytest.mark.slow
def test_bad_source_gives_non_zero_exit_and_our_message(tmp_path):
    out = tmp_path / "outputs"
    proc = luigi_cli(["--module", "pipelines", "EvaluateHAR", "--local-scheduler", "--source", "no/such/file.txt",
                      "--output-dir", str(out)], cwd=tmp_path)
    assert proc.returncode == 30, proc.stderr[-3000:]
    assert "DataFileNotFoundError: --source" in proc.stderr and "does not exist" in proc.stderr
    assert "1 failed" in proc.stderr and "PrepareHAR" in proc.stderr
    assert not glob.glob(str(out / "**" / "*.json"), recursive=True)  # nothing a rerun would trust


def test_a_refused_parameter_value_is_one_line_not_a_traceback(tmp_path):
    # refused while Luigi reads the command line: our message, without Luigi's "Uncaught exception" traceback
    for args, message in ((["EvaluateMedical", "--shape", "16x16"], "ConfigError: --shape: expected 1 or 3"),
                          (["TrainHAR", "--epochs", "abc"], "ConfigError: --epochs: expected a whole number"),
                          (["SweepHAR", "--seeds", "[1, 1]"], "ConfigError: --seeds repeats a value"),
                          (["TrainHAR", "--seed", "abc"], "ConfigError: --seed: expected a whole number"),
                          (["TrainMedical", "--learning-rate", "1e-3x"], "ConfigError: --learning-rate: expected a")):
        proc = luigi_cli(["--module", "pipelines", *args, "--local-scheduler", "--output-dir", str(tmp_path)],
                         cwd=tmp_path)
        assert proc.returncode == 40, proc.stderr[-2000:]
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_killed_during_training_then_rerun_finishes(tmp_path):
    out = tmp_path / "outputs"
    args = ["--module", "pipelines", "TrainHAR", "--local-scheduler", "--output-dir", str(out),
            "--synthetic-subjects", "4", "--synthetic-windows", "4", "--window", "64", "--epochs", "8",
            "--patience", "8"]
    env = {k: v for k, v in os.environ.items() if k not in ("LUIGI_CONFIG_PATH", "PYTHONPATH")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(script("luigi") + args + ["--verbose", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    try:
        for line in proc.stdout:  # one line per epoch with --verbose 2
            seen.append(line)
            if line.startswith("Epoch 2/8"):
                break
        else:
            pytest.fail("training never reached epoch 2:\n" + "".join(seen[-40:]))
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert glob.glob(str(out / "har" / "*" / "prepared.json"))
    assert not glob.glob(str(out / "har" / "*" / "runs" / "*" / "train.json")), "killed run looks complete"

    rerun = luigi_cli(args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 ran successfully" in rerun.stderr and "1 complete ones were encountered" in rerun.stderr
    (train_json,) = glob.glob(str(out / "har" / "*" / "runs" / "*" / "train.json"))
    info = read_json(train_json)
    assert info["epochs_trained"] == 8
    with open(os.path.join(os.path.dirname(train_json), "history.csv")) as handle:
        assert len(handle.read().strip().splitlines()) == 9


@pytest.mark.slow
def test_run_all_with_two_workers_under_luigid(tmp_path):
    port = free_port()
    state = tmp_path / "luigid"
    state.mkdir()
    out = tmp_path / "outputs"
    server = subprocess.Popen(script("luigid") + ["--address", "127.0.0.1", "--port", str(port),
                                                  "--logdir", str(state), "--state-path", str(state / "state.pickle")],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import socket

        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "luigid exited at start"
                assert time.time() < deadline, "luigid did not start listening"
                time.sleep(0.2)
        proc = luigi_cli(["--module", "pipelines", "RunAll", "--workers", "2", "--scheduler-host", "127.0.0.1",
                          "--scheduler-port", str(port), "--output-dir", str(out), "--epochs", "1",
                          "--EvaluateHAR-synthetic-subjects", "4", "--EvaluateHAR-synthetic-windows", "3",
                          "--EvaluateHAR-window", "32",
                          "--EvaluateVision-max-samples", "200", "--EvaluateVision-architecture", "tiny",
                          "--EvaluateMedical-synthetic-n", "8", "--EvaluateMedical-synthetic-shape", "16",
                          "--EvaluateMedical-shape", "12"], cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "11 ran successfully" in proc.stderr, proc.stderr[-3000:]  # 3 x 3 chains + scans + RunAll
        for domain in ("har", "vision", "medical"):
            (metrics,) = glob.glob(str(out / domain / "*" / "runs" / "*" / "metrics.json"))
            assert 0 <= read_json(metrics)["accuracy"] <= 1
        # The scheduler saw the tasks (its task list is served over HTTP on the same port).
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list?data=" +
                                    urllib.parse.quote(json.dumps({"status": "DONE", "upstream_status": "",
                                                                   "search": ""})), timeout=10) as r:
            done = json.load(r)["response"]
        assert any(k.startswith("RunAll") for k in done) and any(k.startswith("TrainMedical") for k in done)
    finally:
        server.terminate()  # by its PID (Popen.pid), never by name
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
