"""`kattr-demo`: the main job end to end on a synthetic catalog the project draws itself.

Steps: generate a catalog -> validate it -> statistics -> train -> evaluate (calibrated) ->
export a SavedModel -> serve it with kattr-serve and query it over REST and gRPC ->
Grad-CAM explanations for a few test products.
No network and no pretrained weights are needed.

Typical usage:
    kattr-demo --output demo             # about 10 minutes on 2 CPU cores
    kattr-demo --output demo --count 300 --epochs 2   # a quick look
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from kattr.cli._common import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo", help="working folder (replaced)")
    parser.add_argument("--count", type=int, default=1200, help="synthetic products")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from kattr.config import load_config
    from kattr.evaluation import evaluate_run
    from kattr.explain import Explainer, explain_files
    from kattr.export import export_run
    from kattr.labels import image_paths, read_manifest
    from kattr.metrics import report_to_markdown
    from kattr.stats import (
        attribute_state_counts,
        compute_attribute_stats,
        format_stats,
        plot_attribute_stats,
    )
    from kattr.synth import generate_catalog
    from kattr.training import train
    from kattr.validate import validate_catalog

    output = Path(args.output)
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)

    _step("1. synthetic catalog")
    catalog = generate_catalog(
        output / "catalog",
        count=args.count,
        seed=args.seed,
        image_size=args.image_size,
        missing_rate=0.1,
        noise_rate=0.0,
        corrupt=2,
    )
    print(f"wrote {catalog.manifest_path} and {catalog.config_path}")
    overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
    config = load_config(catalog.config_path, overrides)

    _step("2. validate (2 corrupt files were planted on purpose)")
    report = validate_catalog(config)
    print(report.format())

    _step("3. statistics")
    frame = read_manifest(config.manifest_path)
    values = compute_attribute_stats(frame, config.taxonomy)
    states = attribute_state_counts(frame, config.taxonomy)
    print(format_stats(values, states))
    charts = plot_attribute_stats({"catalog": values}, output / "stats", {"catalog": states})
    print(f"charts: {', '.join(str(p) for p in charts)}")

    _step("4. train")
    run_dir = output / "run"
    train(config, run_dir, verbose=2)

    _step("5. calibrate thresholds on the validation split, evaluate on the test split")
    evaluation = evaluate_run(run_dir, calibrate=True)
    print(report_to_markdown(evaluation))
    print(
        f"\nreport: {run_dir / 'eval' / 'report.md'}; curves: {run_dir / 'eval' / 'pr_curves.png'}"
    )

    _step("6. export a SavedModel for TF Serving")
    version_dir = export_run(run_dir, output / "export", name="kattr")
    print(f"exported {version_dir}")

    _step("7. serve it locally (same REST and gRPC APIs as TF Serving) and query it")
    _query_server(version_dir.parent, config, catalog)

    _step("8. explain: Grad-CAM per attribute for a few test products")
    test_rows = frame[frame["split"] == "test"].head(4)
    explanations = output / "explain"
    explain_files(Explainer.from_run(run_dir), image_paths(test_rows, config), explanations)
    print(f"overlays and contact sheets: {explanations}; open {explanations / 'index.html'}")
    return 0


def _query_server(base_path: Path, config, catalog) -> None:
    """Starts kattr-serve on free loopback ports, sends one REST and one gRPC request, stops."""
    from kattr.client import PredictClient, read_value_names
    from kattr.labels import read_manifest
    from kattr.server import ServerOptions, serve

    frame = read_manifest(catalog.manifest_path)
    row = frame[frame["split"] == "test"].iloc[0]
    image = (catalog.root / row[config.data.image_column]).read_bytes()
    truth = {a.name: row[a.source_column] for a in config.taxonomy.attributes}
    names = read_value_names(base_path)
    with serve(base_path, ServerOptions(rest_port=0, grpc_port=0)) as server:
        print(f"kattr-serve: REST {server.rest_url}, gRPC {server.grpc_target}")
        clients = {
            "REST": PredictClient.from_rest(server.rest_url, server.model_name, value_names=names),
            "gRPC": PredictClient.from_grpc(
                server.grpc_target, server.model_name, value_names=names
            ),
        }
        print(f"product {row[config.data.image_column]}, catalog labels: {truth}")
        for protocol, client in clients.items():
            attributes = client.predict([image])[0]
            labels = {name: result["labels"] for name, result in attributes.items()}
            print(f"  {protocol:4s} predicted: {labels}")
    print("server stopped")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: run_demo(args))


if __name__ == "__main__":
    sys.exit(main())
