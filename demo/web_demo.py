"""Web demo: segment or detect your own images with your own class names, in the browser.

python demo/web_demo.py                       # offline: the shipped tiny CLIP, http://127.0.0.1:7860
python demo/web_demo.py --clip-checkpoint ViT-B-16.pt --port 8000   # real CLIP weights, Context-59 protocols
python demo/web_demo.py --det-config configs/synthetic/fvit_tinyclip_synthetic-128.py --weights DET.pth

Everything goes through ``ovdense.apis`` (``init_model`` / ``inference_model``).
Models are loaded once and kept; a changed vocabulary reuses the model and its cached text embeddings.
One request runs at a time, the others wait in the queue. The server listens on 127.0.0.1 unless told
otherwise; no share link, no analytics, no web fonts: nothing leaves the machine.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # before gradio is imported

import torch  # noqa: E402
import pandas as pd  # noqa: E402

from ovdense.apis import (ImageReadError, check_image_size, find_config, inference_model, init_model,  # noqa: E402
                          read_image)
from ovdense.cli import renamed  # noqa: E402
from ovdense.clip import CheckpointError, PretrainedWeightsUnavailable  # noqa: E402
from ovdense.models.methods import registered_methods  # noqa: E402
from ovdense.runtime import keep_freed_memory  # noqa: E402
from ovdense.visualization import save_detections, save_segmentation, write_image_atomic  # noqa: E402
from ovdense.vocabulary import Vocabulary, known_datasets  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / 'ovdense' / 'assets'
SYNTHETIC_VOCAB = ('grass, sand, water, snow, circle, square, triangle, star, cross, ring, diamond, hexagon, '
                   'crescent, arrow, heart, pentagon')
USER_ERRORS = (ValueError, ImageReadError, FileNotFoundError, CheckpointError, PretrainedWeightsUnavailable)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--host', default='127.0.0.1', help='address to listen on (default: this machine only)')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--config', help='a segmentation config to offer besides the dense modes')
    p.add_argument('--model', default='ViT-B-16', help='open_clip model name (with --pretrained or --clip-checkpoint)')
    p.add_argument('--pretrained', default=None, help='open_clip pretrained tag, e.g. openai')
    p.add_argument('--clip-checkpoint', help='local CLIP weights (default: the shipped tiny CLIP)')
    p.add_argument('--checkpoint', dest='clip_checkpoint', action=renamed('--clip-checkpoint'), help=argparse.SUPPRESS)
    p.add_argument('--clip-config', help='open_clip model-config JSON for --clip-checkpoint')
    p.add_argument('--det-config', help='detector config (detection needs it and --weights)')
    p.add_argument('--weights', help='trained detector checkpoint for --det-config')
    p.add_argument('--load-from', dest='weights', action=renamed('--weights'), help=argparse.SUPPRESS)
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


class Models:
    """Loaded models by (task, method), built on first use and kept."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._models: dict[tuple[str, str], tuple] = {}
        self._lock = threading.Lock()
        a = args
        self.tiny = not (a.clip_checkpoint or a.pretrained or a.clip_config)
        if self.tiny:
            self.clip = dict(config_file=str(ASSETS / 'tinyclip_synthetic.json'),
                             checkpoint=str(ASSETS / 'tinyclip_synthetic.safetensors'))
        elif a.clip_config:
            self.clip = dict(config_file=a.clip_config, checkpoint=a.clip_checkpoint)
        else:
            self.clip = dict(model_name=a.model, pretrained=a.pretrained, checkpoint=a.clip_checkpoint)

    def methods(self) -> list[str]:
        """The registered dense methods (a user's too, when imported) that have a protocol config for this CLIP."""
        modes = [m for m in sorted(registered_methods()) if self._protocol(m) is not None]
        return ([f'config: {Path(self.args.config).name}'] if self.args.config else []) + modes

    def _protocol(self, method: str) -> Path | None:
        try:  # tiny: the protocol the tiny CLIP was made for (128 px scenes, whole image, its layer indices)
            return find_config(f'{method}_tinyclip_synthetic-128') if self.tiny else find_config(method, 'context59')
        except ValueError:
            return None

    def config_of(self, method: str) -> Path:
        if method.startswith('config: '):
            return Path(self.args.config)
        if method not in self.methods():
            raise ValueError(f"unknown method '{method}'; valid: {self.methods()}")
        return self._protocol(method)

    def get(self, task: str, method: str, progress) -> torch.nn.Module:
        key = (task, method if task == 'segmentation' else 'detector')
        with self._lock:
            if key not in self._models:
                progress(0.0, desc=f'loading the {key[1]} model')
                if task == 'segmentation':
                    self._models[key] = init_model(self.config_of(method), clip=self.clip, device=self.args.device)
                else:
                    if not (self.args.det_config and self.args.weights):
                        raise ValueError('detection needs a trained detector: start the demo with '
                                         '--det-config CONFIG --weights CHECKPOINT')
                    self._models[key] = init_model(self.args.det_config, self.args.weights, device=self.args.device)
            return self._models[key]


def sample_images(folder: Path) -> list[str]:
    """A few synthetic scenes (generated, deterministic) and the CamVid street image."""
    from ovdense.datasets.synthetic import WorldConfig, generate
    out = []
    for i in range(3):
        path = folder / f'synthetic_{i}.png'
        write_image_atomic(path, generate(2000, i, WorldConfig(size=128)).image)
        out.append(str(path))
    return out + [str(REPO / 'demo' / 'camvid_0016E5_07959.png')]


def run(models: Models, out_root: Path, image_path: str | None, vocab_text: str, task: str, method: str,
        score_thr: float, progress) -> tuple:
    """One request: (result image, table rows, files to download, status text). Errors a user can fix
    come back as the status text, never as a stack trace."""
    try:
        if not image_path:
            raise ValueError('no image: upload one or pick a sample')
        image = read_image(image_path)
        check_image_size(*image.shape[:2])
        if not (vocab_text or '').strip():
            raise ValueError('empty vocabulary: type at least one class name')
        vocab = Vocabulary.from_list(vocab_text, source='the vocabulary box')
        model = models.get(task, method, progress)

        def report(stage: str, done: int, total: int) -> None:
            progress((done, total), desc={'text': 'encoding the class names', 'windows': 'CLIP windows',
                                          'tiles': 'post-processing'}.get(stage, stage))
        out_dir = Path(tempfile.mkdtemp(dir=out_root))
        stem = Path(image_path).stem
        meta = dict(method=method if task == 'segmentation' else 'detector', config=str(model.cfg.filename))
        if task == 'segmentation':
            res = inference_model(model, image[:, :, ::-1], vocabulary=vocab, progress=report)
            label = res.pred_sem_seg.data[0].cpu().numpy()
            paths, shares = save_segmentation(out_dir, stem, image, label, vocab.classes, **meta)
            rows = [[name, share] for name, share in shares.items()]
            result = read_image(paths['overlay'])
            files = [paths['label'], paths['json']]
            status = f'{len(rows)} of {len(vocab)} classes found ({image.shape[1]}x{image.shape[0]} pixels).'
            columns = ['class', 'pixels %']
        else:
            progress(0.5, desc='detecting')
            pred = inference_model(model, image[:, :, ::-1], vocabulary=vocab).pred_instances
            paths, dets = save_detections(out_dir, stem, image, pred, vocab.names, score_thr=score_thr, **meta)
            result = read_image(paths['image'])
            files = [paths['json']]
            rows = [[d['label'], round(d['score'], 3), ', '.join(map(str, d['bbox']))] for d in dets]
            status = f'{len(rows)} boxes scoring at least {score_thr}.'
            columns = ['class', 'score', 'box (x1, y1, x2, y2)']
        return result, pd.DataFrame(rows, columns=columns), [str(f) for f in files], status
    except USER_ERRORS as e:
        return None, None, None, f'Error: {e}'


def image_input(**kwargs):
    """Gradio's image component, handing the request the uploaded file as it is: Gradio's own decoding fails on an
    empty, corrupt, non-image or oversized upload before the request runs, and the page then shows a bare "Error";
    :func:`run` reads the file itself (size from the header first, EXIF orientation) and says what is wrong. (The
    instance's ``preprocess`` is replaced: subclassing a Gradio component writes a ``.pyi`` stub beside this file.)"""
    import gradio as gr

    image = gr.Image(type='filepath', **kwargs)
    image.preprocess = lambda payload: None if payload is None else payload.path
    return image


def build_app(args: argparse.Namespace):
    """The Gradio page (not launched)."""
    import gradio as gr

    models = Models(args)
    root = Path(tempfile.mkdtemp(prefix='ovdense_web_'))
    samples = sample_images(root)
    presets = {'synthetic world (16)': SYNTHETIC_VOCAB}
    presets.update({name: ', '.join(' | '.join(c) for c in Vocabulary.from_dataset(name).classes)
                    for name in known_datasets()})
    default_vocab = SYNTHETIC_VOCAB if models.tiny else 'sky, road, car, building, tree, pedestrian'
    with gr.Blocks(title='ovdense', analytics_enabled=False) as app:
        gr.Markdown('## ovdense: open-vocabulary segmentation and detection\nName the classes, '
                    'separated by commas (synonyms of one class with `|`), pick an image, run.')
        with gr.Row():
            with gr.Column():
                image = image_input(label='image', sources=['upload', 'clipboard'], height=320, elem_id='input-image')
                gr.Examples(samples, inputs=image, label='samples')
                vocab = gr.Textbox(default_vocab, label='vocabulary', lines=2, elem_id='vocabulary')
                preset = gr.Dropdown(list(presets), value=None, label='vocabulary presets')
                task = gr.Radio(['segmentation', 'detection'], value='segmentation', label='task', elem_id='task')
                method = gr.Dropdown(models.methods(), value=models.methods()[0] if args.config else 'naclip',
                                     label='method (segmentation)')
                score = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label='detection score threshold')
                button = gr.Button('Run', variant='primary', elem_id='run')
            with gr.Column():
                result = gr.Image(label='result', type='numpy', interactive=False, format='png', height=320,
                                  buttons=['download', 'fullscreen'], elem_id='result')
                status = gr.Markdown(elem_id='status')
                table = gr.Dataframe(label='per class / per box', interactive=False, wrap=True)
                files = gr.File(label='downloads', file_count='multiple', interactive=False)
        preset.change(lambda name: presets.get(name, gr.update()), preset, vocab)
        button.click(lambda *a, progress=gr.Progress(): run(models, root, *a, progress=progress),
                     [image, vocab, task, method, score], [result, table, files, status], concurrency_limit=1)
    app.queue(default_concurrency_limit=1)
    return app


def main(argv: list[str] | None = None) -> None:
    import gradio as gr
    args = parse_args(argv)
    keep_freed_memory()  # a forward's buffers reused, not page-faulted in again per request
    app = build_app(args)
    # no share link, no server-side rendering (a Node process), system fonts only (no web-font requests)
    app.launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, show_error=False,
               theme=gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                                       font_mono=['ui-monospace', 'monospace']),
               footer_links=[])


if __name__ == '__main__':
    main()
