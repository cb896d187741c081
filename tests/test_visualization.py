"""Saved label maps hold every class index of the vocabulary (a class index must never wrap)."""
import json

import numpy as np
from PIL import Image

from ovdense.visualization import save_segmentation


def test_label_png_is_wide_enough_for_the_vocabulary(tmp_path):
    image = np.zeros((4, 5, 3), np.uint8)
    for n, dtype in [(200, np.uint8), (70, np.uint8), (5000, np.uint16)]:
        label = np.arange(20).reshape(4, 5) * (n // 20)
        files, _ = save_segmentation(tmp_path, f'n{n}', image, label, [[f'c{i}'] for i in range(n)])
        back = np.asarray(Image.open(files['label']))
        assert back.dtype == dtype and np.array_equal(back, label)
        assert json.loads(files['json'].read_text())['label_encoding'] == 'index'
    n = 70_000  # beyond uint16: class 69992 must not be written as 4456
    label = np.array([[0, 255, 256, 65535], [65536, 69992, 69999, 1]])
    files, shares = save_segmentation(tmp_path, 'big', np.zeros((2, 4, 3), np.uint8), label,
                                      [[f'c{i}'] for i in range(n)])
    rgb = np.asarray(Image.open(files['label'])).astype(np.int64)
    assert rgb.shape == (2, 4, 3)
    assert np.array_equal(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], label)
    meta = json.loads(files['json'].read_text())
    assert meta['label_encoding'] == 'rgb24' and meta['shares_percent']['c69992'] == 12.5 and shares['c69992'] == 12.5


def test_output_names_never_collide(tmp_path):
    """Stems that collide, paths that '__' makes equal (a__b/c, a/b__c), the same file twice, names differing in case:
    every input gets its own output name."""
    from ovdense.visualization import unique_stems
    rel = ['a__b/c.png', 'a/b/c.png', 'a/b/c.png', 'a/b__c.png', 'a__b__c.png', 'c.png', 'x/C.png', 'a__b__c_png.png']
    for r in rel:
        (tmp_path / r).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / r).write_bytes(b'')
    names = unique_stems([tmp_path / r for r in rel])
    assert len({n.lower() for n in names}) == len(rel), names


def test_stale_temporaries_are_cleaned_and_a_label_map_never_meets_another_vocabulary(tmp_path):
    import os
    import time

    from ovdense.visualization import clean_stale_temporaries
    old, fresh = tmp_path / '.x_label.png.abc.tmp', tmp_path / '.y_label.png.def.tmp'
    for p in (old, fresh):
        p.write_bytes(b'partial')
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert clean_stale_temporaries(tmp_path) == [old] and not old.exists() and fresh.exists()  # a live writer's stays
    image = np.zeros((2, 2, 3), np.uint8)
    files, _ = save_segmentation(tmp_path, 's', image, np.zeros((2, 2), int), [['a'], ['b']])
    import ovdense.visualization as vis
    real = vis.write_json_atomic

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies between the label map and its JSON
    vis.write_json_atomic = killed
    try:
        save_segmentation(tmp_path, 's', image, np.ones((2, 2), int), [['c'], ['d']])
    except KeyboardInterrupt:
        pass
    finally:
        vis.write_json_atomic = real
    assert files['label'].exists() and not files['json'].exists()  # incomplete, not mismatched


def test_seg_visualizer_draws_the_classes_a_prediction_carries(monkeypatch):
    """The Runner's visualisation hook sets the dataset's names (or Cityscapes'): a prediction made in another
    vocabulary is drawn with its own names and colours, and the visualiser's meta is left as it was."""
    import numpy as np
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer

    from ovdense.visualizer import OVSegLocalVisualizer
    drawn, draw = [], SegLocalVisualizer._draw_sem_seg
    monkeypatch.setattr(SegLocalVisualizer, '_draw_sem_seg',
                        lambda self, image, sem_seg, classes, palette, *a, **k:
                        drawn.append(tuple(classes)) or draw(self, image, sem_seg, classes, palette, *a, **k))
    vis = OVSegLocalVisualizer(name='ov_seg_vis_test')
    vis.set_dataset_meta(dataset_name='cityscapes')
    given = dict(vis.dataset_meta)
    sample = SegDataSample(pred_sem_seg=PixelData(data=torch.tensor([[[0, 1], [1, 0]]])),
                           metainfo=dict(classes=('cat', 'dog')))
    vis.add_datasample('x', np.zeros((2, 2, 3), np.uint8), sample, draw_gt=False)
    assert drawn == [('cat', 'dog')] and vis.dataset_meta == given
