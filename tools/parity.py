"""Reproduce golden reference outputs: python tools/parity.py CASE.pt [CASE.pt ...]

Prints the max absolute difference per tensor and exits non-zero if any exceeds its tolerance
(1e-4 for tensors, 0 for label maps, windows, vocabularies). Hard thresholds print their flips: ProxyCLIP's
``..._mask_flips_<n>`` lines give the n mask decisions taken otherwise than the reference and the largest |A| among
them (each must lie within the stated margin of the threshold; the tensors are then compared given the
reference's decisions).
"""
import argparse
import sys

from ovdense.testing.parity import run_case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('cases', nargs='+', help='golden case files (e.g. ../shared/golden/sclip/case_a.pt)')
    args = parser.parse_args()
    failed = 0
    for path in args.cases:
        print(f'== {path}')
        try:
            checks = run_case(path)
        except (NotImplementedError, FileNotFoundError) as e:
            print(f'  ERROR {e}')
            failed += 1
            continue
        for c in checks:
            print(f'  {"ok  " if c.ok else "FAIL"} {c.name:28s} {c.what} = {c.diff:.3g} (tol {c.tol:g})')
        failed += any(not c.ok for c in checks)
    print(f'{len(args.cases) - failed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
