from pathlib import Path

from setuptools import find_packages, setup


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
    license='Apache-2.0',
)
