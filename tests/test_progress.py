import io

from ovdense.progress import progress_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_logs_get_a_few_lines_not_one_per_item():
    log = io.StringIO()
    bar = progress_bar(200, 'synthetic val', stream=log)
    for _ in range(200):
        bar.update()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith('[synthetic val] 0/200 (0%)') and lines[-1].startswith('[synthetic val] 200/200 (100%)')
    assert len(lines) == 2  # start and end (a line every 10 s in between on slow loops)


def test_periodic_lines_on_slow_loops():
    log = io.StringIO()
    bar = progress_bar(5, 'slow', interval=0.0, stream=log)
    for _ in range(5):
        bar.update()
    assert len(log.getvalue().splitlines()) == 6


def test_terminal_gets_a_bar():
    tty = _Tty()
    bar = progress_bar(3, 'x', stream=tty)
    for _ in range(3):
        bar.update()
    out = tty.getvalue()
    assert '3/3' in out and '\r' in out and out.endswith('\n')


def test_make_synthetic_in_a_log_prints_lines_not_a_line_per_image(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(repo / 'tools/make_synthetic.py'), '--out', str(tmp_path), '--split', 'val',
                          '--num-images', '40', '--size', '64'], capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0].startswith('[synthetic val] 0/40') and lines[-2].startswith('[synthetic val] 40/40')
    assert lines[-1] == f'wrote 40 images to {tmp_path / "val"}' and len(lines) <= 5


def test_stage_progress_draws_a_bar_per_stage_run():
    """One bar per run of a stage (a new image's windows start a new bar), nothing for skipped stages."""
    import io

    from ovdense.progress import stage_progress
    out = io.StringIO()
    report = stage_progress(stream=out, interval=0)
    for _ in range(2):  # two images
        for i in range(1, 4):
            report('windows', i, 3)
    report('images', 1, 2)
    lines = out.getvalue().splitlines()
    assert [ln.split(' (')[0] for ln in lines] == ['[windows] 0/3', '[windows] 1/3', '[windows] 2/3', '[windows] 3/3'] * 2
