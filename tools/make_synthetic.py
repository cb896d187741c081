"""Export a split of the synthetic open-vocabulary world in standard formats.

python tools/make_synthetic.py --out data/synthetic --split val --num-images 200 --seed 2000
"""
import argparse

from ovdense.datasets.synthetic import WorldConfig, export


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True)
    p.add_argument('--split', default='val')
    p.add_argument('--num-images', type=int, default=200)
    p.add_argument('--seed', type=int, default=2000, help='world seed (pretraining uses 0; keep held-out seeds apart)')
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--max-objects', type=int, default=3)
    args = p.parse_args()
    out = export(args.out, split=args.split, num_images=args.num_images, seed=args.seed,
                 cfg=WorldConfig(size=args.size, max_objects=args.max_objects))
    print(f'wrote {args.num_images} images to {out}')


if __name__ == '__main__':
    main()
