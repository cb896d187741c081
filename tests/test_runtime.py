"""ovdense.runtime: freed blocks kept for reuse (page faults of a repeated forward-like allocation pattern)."""
import subprocess
import sys

import pytest

from ovdense.runtime import keep_freed_memory

# a forward's pattern of activations (a few MB to 70 MB, freed in another order than allocated), repeated: the
# page faults of the last repeats, after one warm-up
_SCRIPT = '''
import resource, sys, torch
from ovdense.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def forward():
    for n in (1 << 20, 4 << 20, 18 << 20, 3 << 20):
        x = torch.empty(n).fill_(0.0); y = torch.empty(n // 2).fill_(1.0); del x
        z = torch.empty(n * 2).fill_(1.0); del y, z
forward(); forward()  # the heap grows to the pattern's size, once
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
forward(); forward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
'''


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', _SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mallopt is glibc (Linux) only')
def test_keep_freed_memory_stops_the_page_faults_of_repeated_forwards():
    default, kept = _faults('default'), _faults('keep')
    # by default glibc maps the large blocks afresh on every call (a fault per 4 KB page touched: ~145 000 here
    # for two calls); kept, the heap serves them again (0 here)
    assert default > 20000, default
    assert kept < default / 20, (kept, default)


def test_keep_freed_memory_refuses_a_limit_out_of_range():
    for bad in (0, -1, 1 << 31):
        with pytest.raises(ValueError, match='limit'):
            keep_freed_memory(bad)
