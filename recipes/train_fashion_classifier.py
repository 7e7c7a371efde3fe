"""Train the small Fashion-MNIST classifier whose features sdekit's CPU-scale FID,
precision and recall use; it is cached outside git (``$SDEKIT_CACHE`` or ~/.cache/sdekit).

    python recipes/train_fashion_classifier.py [--epochs 2] [--data-dir DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import logging

from sdekit.data import load_fashion_mnist
from sdekit.metrics.classifier_training import train_fashion_classifier


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--epochs", type=int, default=2, help="passes over the 60k training images")
    p.add_argument("--data-dir", default=None, help="folder with the IDX .gz files")
    p.add_argument("--out", default=None, help="where to save (default: the cache path)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train = load_fashion_mnist(args.data_dir, train=True)
    test = load_fashion_mnist(args.data_dir, train=False)
    _, acc, path = train_fashion_classifier(train, test, epochs=args.epochs, out=args.out)
    print(f"test accuracy {acc:.4f}; saved {path}")


if __name__ == "__main__":
    main()
