import pytest
import torch

from ovdense.testing import golden_dir, shared_dir

SHARED = shared_dir()
requires_shared = pytest.mark.skipif(
    not (SHARED / 'golden').is_dir(),
    reason=f'{SHARED} not found: the golden files and real data live in ../shared (CI has it, a user clone does not)')


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='session')
def golden_clip():
    if not (golden_dir() / 'tiny_clip_seed0.safetensors').is_file():
        pytest.skip(f'{golden_dir()} not found (CI has ../shared, a user clone does not)')
    from ovdense.testing import golden_clip as load
    return load(0)


@pytest.fixture(scope='session')
def tiny_clip():
    from ovdense.testing import tiny_clip as make
    return make(0)
