"""Weights shipped with ovdense (trained on the synthetic world, see README), as ``build_clip`` /
``build_vfm`` keyword arguments with absolute paths, so configs find them from any install."""
from pathlib import Path

_HERE = Path(__file__).resolve().parent

TINYCLIP_SYNTHETIC = dict(config_file=str(_HERE / 'tinyclip_synthetic.json'),
                          checkpoint=str(_HERE / 'tinyclip_synthetic.safetensors'))
TINYVFM_SYNTHETIC = dict(config_file=str(_HERE / 'tinyvfm_synthetic.json'),
                         checkpoint=str(_HERE / 'tinyvfm_synthetic.safetensors'))
