import importlib.util
import inspect
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location('benchmark_tool', REPO / 'tools/benchmark.py')
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

ARGS = {
    'seg': ['--mode', 'sclip', '--size', '96', '128'],
    'clipself': ['--vfm', 'vit_small_patch16_224.dino'],
    'catseg': ['--catseg-mode', 'whole', '--classes', '3'],
    'scale': ['--mode', 'naclip', '--images', '2', '--vocab', 'voc21'],
    'protocol': ['--config', 'c.py', '--image', 'x.jpg', '--checkpoint', 'w.safetensors'],
    'reference': ['--config', 'c.py', '--image', 'x.jpg', '--repo', 'r', '--ref-config', 'r.py'],
}


@pytest.mark.parametrize('task', sorted(ARGS))
def test_every_option_of_a_task_is_a_keyword_of_its_function(task):
    args = tool.parser().parse_args([task, *ARGS[task], '--threads', '1'])
    kwargs = {k: v for k, v in vars(args).items() if k not in ('task', 'fn', 'threads')}
    bound = inspect.signature(args.fn).bind(**kwargs)  # raises on an option the function does not take
    assert bound.arguments == kwargs


def test_protocol_needs_its_config_and_image(capsys):
    with pytest.raises(SystemExit):
        tool.parser().parse_args(['protocol', '--image', 'x.jpg'])
    assert '--config' in capsys.readouterr().err


def test_defaults_per_task():
    parse = tool.parser().parse_args
    assert parse(['protocol', '--config', 'c', '--image', 'i']).model == 'ViT-B-16-quickgelu'
    assert parse(['scale']).model is None  # the shipped tiny CLIP
    assert parse(['seg']).model == 'ViT-B-16' and parse(['catseg']).size == (640, 640)
