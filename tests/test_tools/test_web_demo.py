"""The web demo in a real browser: headless Chromium (Debian's chromium + chromium-driver) through
selenium, against the demo served on a free local port with the shipped tiny CLIP and a detector
trained for two iterations in the test."""
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which('chromium') or '/usr/bin/chromium', shutil.which('chromedriver') or '/usr/bin/chromedriver'
selenium = pytest.importorskip('selenium', reason='selenium is not installed (tools/install.sh installs it)')
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()),
                                reason='no chromium / chromedriver (tools/install.sh installs Debian\'s packages)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _train_tiny_detector(tmp: Path) -> Path:
    """Two iterations of the synthetic F-ViT recipe on 8 generated scenes: a real (if weak) checkpoint."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    import ovdense.detection  # noqa: F401
    from ovdense.datasets.synthetic import export
    data = export(tmp / 'synthetic', split='train', num_images=8, seed=3000, progress=False)
    cfg = Config.fromfile(str(REPO / 'configs/synthetic/fvit_tinyclip_synthetic-128.py'))
    cfg.work_dir = str(tmp / 'det')
    cfg.train_dataloader.dataset.data_root = str(data)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint.interval = 2
    cfg.param_scheduler = []
    Runner.from_cfg(cfg).train()
    return tmp / 'det' / 'iter_2.pth'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('web')
    ckpt = _train_tiny_detector(tmp)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / 'demo/web_demo.py'), '--port', str(port),
                             '--det-config', str(REPO / 'configs/synthetic/fvit_tinyclip_synthetic-128.py'),
                             '--weights', str(ckpt)], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f'http://127.0.0.1:{port}/'
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f'the demo exited: {proc.stdout.read()[-2000:]}')
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail('the demo did not answer within 120 s')
    yield url, tmp
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope='module')
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--window-size=1400,1600'):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _wait(fn, timeout=180.0):
    end = time.time() + timeout
    while time.time() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError('timed out waiting for the page')


def _run(browser, vocabulary: str, task: str):
    from selenium.webdriver.common.by import By
    box = browser.find_element(By.CSS_SELECTOR, '#vocabulary textarea')
    box.clear()
    box.send_keys(vocabulary or ' ')
    browser.find_element(By.XPATH, f"//*[@id='task']//label[contains(., '{task}')]").click()
    old = _status(browser)
    browser.find_element(By.CSS_SELECTOR, '#run').click()
    return _wait(lambda: (t := _status(browser)) != old and t)


def _status(browser) -> str:
    """The status text once the request is over ('' while its progress tracker shows)."""
    return browser.execute_script(
        "const s = document.querySelector('#status');"
        "const t = s.querySelector('[data-testid=status-tracker]');"
        "if (t && !t.classList.contains('hide')) return '';"
        "const m = s.querySelector('[data-testid=markdown]'); return m ? m.innerText.trim() : '';")


def _result_image(browser):
    from selenium.webdriver.common.by import By
    src = _wait(lambda: [i.get_attribute('src') for i in browser.find_elements(By.CSS_SELECTOR, '#result img')
                         if i.get_attribute('src')])
    data = urllib.request.urlopen(src[0], timeout=10).read()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_segment_then_bad_vocabulary_then_detect_in_the_browser(server, browser):
    from selenium.webdriver.common.by import By

    from ovdense.datasets.synthetic import WorldConfig, generate
    from ovdense.visualization import write_image_atomic
    url, tmp = server
    scene = generate(2000, 5, WorldConfig(size=128)).image
    write_image_atomic(tmp / 'scene.png', scene)
    browser.get(url)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, '#input-image input[type=file]'))
    browser.find_element(By.CSS_SELECTOR, '#input-image input[type=file]').send_keys(str(tmp / 'scene.png'))
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, '#input-image img'))

    status = _run(browser, 'grass, sand, water, snow, circle, square, star | stars, heart, hexagon', 'segmentation')
    assert 'classes found' in status, status
    result = _result_image(browser)
    assert result.shape[0] >= 128 and result.shape[1] > 128  # the overlay plus its legend
    assert np.abs(result[:128, :128].astype(int) - scene.astype(int)).mean() > 10  # colored, not the input
    assert 'pixels %' in browser.find_element(By.CSS_SELECTOR, 'table').text

    status = _run(browser, '', 'segmentation')
    assert status.startswith('Error:') and 'empty' in status, status
    status = _run(browser, 'star, star', 'segmentation')
    assert 'duplicate' in status, status

    status = _run(browser, 'circle, square, star, heart', 'detection')
    assert 'boxes scoring at least' in status, status
    det = _result_image(browser)
    assert det.shape[:2] == scene.shape[:2]


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data): a few bytes that decode to gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) + chunk(b'IEND', b'')


def test_uploads_gradio_cannot_decode_get_a_message(server, browser):
    """Empty, corrupt, non-image and oversized uploads: the page says what is wrong with the file (Gradio's own
    decoding used to fail first and show a bare "Error")."""
    from selenium.webdriver.common.by import By
    url, tmp = server
    uploads = {'empty.png': (b'', 'empty.png: not an image or corrupt'),
               'corrupt.png': (b'\x89PNG\r\n\x1a\nnot really', 'corrupt.png: not an image or corrupt'),
               'notes.txt': (b'sky, road', 'no image: upload one'),  # the page's file picker takes images only
               'huge.png': (_png_header(100000, 100000), 'huge.png is too large')}
    for name, (data, says) in uploads.items():
        (tmp / name).write_bytes(data)
        browser.get(url)
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, '#input-image input[type=file]'))
        browser.find_element(By.CSS_SELECTOR, '#input-image input[type=file]').send_keys(str(tmp / name))
        time.sleep(2)  # the upload
        status = _run(browser, 'sky, road', 'segmentation')
        assert status.startswith('Error:') and says in status, (name, status)


def test_request_errors_are_messages_not_tracebacks(tmp_path, monkeypatch):
    """What the page shows for a bad image, an empty or duplicate vocabulary, an image over the limit,
    and detection without a detector (no browser needed: the request function itself)."""
    sys.path.insert(0, str(REPO / 'demo'))
    import web_demo

    from ovdense import apis
    models = web_demo.Models(web_demo.parse_args([]))
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.zeros((40, 50, 3), np.uint8))

    def status(image, vocab, task='segmentation'):
        out = web_demo.run(models, tmp_path, str(image) if image else None, vocab, task, 'naclip', 0.3,
                           lambda *a, **k: None)
        return out[3]
    assert status(corrupt, 'sky') == f'Error: cannot read image {corrupt}: not an image or corrupt'
    assert status(None, 'sky') == 'Error: no image: upload one or pick a sample'
    assert status(good, '  ').startswith('Error: empty vocabulary')
    assert "duplicate class name 'Sky'" in status(good, 'sky, road, Sky')
    assert 'needs a trained detector' in status(good, 'sky', 'detection')
    monkeypatch.setattr(apis, 'MAX_PIXELS', 1000)
    assert status(good, 'sky') == f'Error: image {good} is too large (50x40 > 1000 pixels)'
