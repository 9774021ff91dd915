"""``python -m bnn_shared.data NAME [--split S] [--data-dir D] [--download]``.

Checks that a dataset's files are there (downloading them with ``--download``) and prints
its metadata and split sizes; without files it prints the one clear message and exits 2.
``python -m bnn_shared.data --list`` lists the registered names.
"""

from __future__ import annotations

import argparse

from . import available_datasets, dataset_info, load_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnn_shared.data", description=__doc__)
    parser.add_argument("name", nargs="?", help="dataset name (see --list)")
    parser.add_argument("--split", action="append", help="split(s) to load (default: all)")
    parser.add_argument(
        "--data-dir", help="data root (default: $BNN_DATA_DIR or ~/.cache/bnn/data)"
    )
    parser.add_argument("--download", action="store_true", help="download missing files")
    parser.add_argument("--list", action="store_true", help="list the registered datasets")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        print("\n".join(available_datasets()))
        return 0
    info = dataset_info(args.name)
    sizes = []
    for split in args.split or info.splits:
        dataset = load_dataset(args.name, split, data_dir=args.data_dir, download=args.download)
        sizes.append(f"{split} {len(dataset)}")
    print(
        f"{info.name}: {info.num_classes} classes, input shape {tuple(info.input_shape)}, "
        f"task {info.task}; samples: {', '.join(sizes)}"
    )
    return 0


if __name__ == "__main__":
    from ..cli import run_cli

    raise SystemExit(run_cli(main))
