import sys
from pathlib import Path

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension  # torch is needed to build: --no-build-isolation


def requirements(name: str) -> list[str]:
    lines = Path('requirements', name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


version = {}
exec(Path('ovdense/version.py').read_text(), version)

setup(
    name='ovdense',
    version=version['__version__'],
    description='Open-vocabulary dense prediction (segmentation, detection) from CLIP vision transformers',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['ovdense', 'ovdense.*']),
    # configs ship inside the package, as mmdet / mmseg do (ovdense/.mim/configs links to ./configs)
    package_data={'ovdense': ['vocabularies/*.txt', 'assets/*', '.mim/configs/**/*.py', '.mim/configs/**/*.txt',
                              '.mim/configs/**/metafile.yml']},
    # mmcv (with ops) is not on PyPI for CPU: tools/install.sh builds it; GPU users install a prebuilt one.
    install_requires=requirements('runtime.txt'),
    extras_require={'tests': requirements('tests.txt')},
    # ovdense._ext: PAMR's kernels (ovdense/csrc/stencil.cpp) and the MLPs' bias + QuickGELU (activation.cpp) on the
    # CPU, OpenMP through torch's own runtime
    ext_modules=[CppExtension('ovdense._ext', ['ovdense/csrc/stencil.cpp', 'ovdense/csrc/activation.cpp'],
                              depends=['ovdense/csrc/simd.h'],
                              extra_compile_args=['-O3'] + (['-fopenmp'] if sys.platform == 'linux' else []),
                              extra_link_args=['-fopenmp'] if sys.platform == 'linux' else [])],
    cmdclass={'build_ext': BuildExtension},
    license='Apache-2.0',
)
