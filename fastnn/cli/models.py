"""``fastnn evaluate`` and ``fastnn predict``: what a saved model makes of digits."""

from __future__ import annotations

import argparse
import json

import kernels

from .. import images, metrics
from ..backend_setup import inference_backend, prepare_backend
from ..evaluation import check_mnist_model, evaluate
from ..modelio import load_model
from .options import (add_backend_option, add_data_options, load_data, note,
                      positive_int_arg)


def add_parsers(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="report a saved model's accuracy on the test set",
        description="Report a saved model's test accuracy, overall and per class, and its "
                    "confusion matrix (rows: true digit, columns: predicted digit).")
    evaluate.add_argument("model", metavar="MODEL", help="model file written by 'train --save'")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_backend_option(evaluate, inference=True)
    add_data_options(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser(
        "predict", help="classify digit images (PNG, JPEG...) or .npy arrays",
        description="Print the most probable digits of each input with their probabilities. "
                    "Images (PNG, JPEG, ...; needs Pillow: pip install \"fastnn[images]\") "
                    "and .npy arrays are turned into MNIST-style inputs as MNIST was made: "
                    "greyscale, light digit on black (inverted when the border is light), "
                    "cropped to the digit, scaled to fit 20x20 keeping the aspect ratio, and "
                    "centred in 28x28 by its centre of mass. A .npy file holds one image "
                    "(28, 28) or (784,), or a stack (n, 28, 28) or (n, 784), as uint8 0-255 "
                    "or float 0-1.")
    predict.add_argument("model", metavar="MODEL", help="model file written by 'train --save'")
    predict.add_argument("files", metavar="FILE", nargs="+", help="images or .npy arrays")
    predict.add_argument("--top", type=positive_int_arg, default=3, metavar="N",
                         help="how many classes to show per input (default: 3; binary "
                              "models have 2)")
    predict.add_argument("--no-preprocess", action="store_true",
                         help="take 28x28 inputs as already MNIST-formatted (light digit on "
                              "black, centred): only scale the values to 0-1")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_backend_option(predict, inference=True)
    predict.set_defaults(handler=cmd_predict)


def _prepare_forward(args: argparse.Namespace, net) -> None:
    """Choose the backend (`inference_backend`) and compile or load its forward pass."""
    args.backend = inference_backend(args.backend, net.dtype.name, net.sizes[1],
                                     note=lambda message: note(args, message))
    prepare_backend(args.backend, net.dtype.name, 1, first_layer_width=net.sizes[1],
                    note=lambda message: note(args, message), training=False)


def cmd_evaluate(args: argparse.Namespace) -> int:
    net = load_model(args.model)
    check_mnist_model(net, args.model)
    data = load_data(args)
    _prepare_forward(args, net)
    scores = evaluate(net, data, args.backend)
    matrix = scores["confusion_matrix"]
    if args.json:
        print(json.dumps({"model": str(args.model), "dataset": scores["dataset"],
                          "n_test": scores["n_test"], "accuracy": scores["accuracy"],
                          "per_class": {str(c): a for c, a in scores["per_class"].items()},
                          "classes": scores["classes"],
                          "confusion_matrix": matrix.tolist()}, indent=2))
        return 0
    source = "full MNIST" if scores["dataset"] == "mnist" else "bundled sample"
    print(f"{args.model}: test accuracy {scores['accuracy']:.2%} on {scores['n_test']:,} images "
          f"({source})\n")
    print(metrics.format_confusion(matrix, net.classes))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    net = load_model(args.model)
    _prepare_forward(args, net)
    results = images.classify_files(net, args.files, top=args.top,
                                    preprocess=not args.no_preprocess, backend=args.backend)
    if args.json:
        print(json.dumps({"model": str(args.model), "classes": list(net.classes),
                          "predictions": results}, indent=2))
        return 0
    for result in results:
        name = result["file"] if result["index"] is None else f"{result['file']}[{result['index']}]"
        ranked = ", ".join(f"{top['digit']} ({top['probability']:.1%})" for top in result["top"])
        print(f"{name}: {ranked}")
    return 0


