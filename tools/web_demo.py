# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALM in the browser: a local Gradio app (works offline).

Examples::

    # the ShapesWorld quickstart model (bash tools/quickstart.sh trains it)
    python tools/web_demo.py
    python tools/web_demo.py --config CFG --checkpoint CKPT --port 7861

Then open http://127.0.0.1:7860: upload an image or pick an example, choose a
task, type a referring expression / categories / a question, or click points,
box corners or scribble vertices on the image, or paint a mask. The app logic
is :mod:`projects.psalm.apis.web_demo`; it needs ``requirements/demo.txt``
(``bash tools/install.sh --demo``).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))
# no usage statistics, no update check: the demo works offline
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')

from projects.psalm.apis.web_demo import (DEFAULT_CONFIG,  # noqa: E402
                                          DemoExample, PSALMWebDemo,
                                          build_app, default_checkpoint,
                                          shapesworld_examples)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='PSALM web demo (local Gradio app)')
    parser.add_argument(
        '--config', default=DEFAULT_CONFIG,
        help=f'model config (default: {DEFAULT_CONFIG})')
    parser.add_argument(
        '--checkpoint',
        help='checkpoint (default: the ShapesWorld quickstart checkpoint '
        'named in work_dirs/quickstart/last_checkpoint)')
    parser.add_argument('--port', type=int, default=7860,
                        help='port (default 7860)')
    parser.add_argument(
        '--host', default='127.0.0.1',
        help='address to listen on (default 127.0.0.1; 0.0.0.0 serves the '
        'local network)')
    parser.add_argument('--device', help='e.g. cpu, cuda:0 (default: CUDA '
                        'when available)')
    parser.add_argument(
        '--examples', nargs='+', metavar='IMAGE',
        help='example images (default: the first ShapesWorld val images of '
        '--data-root, when generated)')
    parser.add_argument(
        '--data-root', default='data/shapesworld',
        help='ShapesWorld tree of the default examples')
    parser.add_argument(
        '--any-task', action='store_true',
        help='also run the tasks the checkpoint was not trained on (with a '
        'note) instead of refusing them')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Load the model and serve the page until interrupted."""
    args = parse_args(argv)
    try:
        checkpoint = args.checkpoint or default_checkpoint()
    except FileNotFoundError as error:
        sys.exit(f'error: {error}')
    if not osp.isfile(checkpoint):
        sys.exit(f'error: checkpoint {checkpoint!r} does not exist')
    try:
        import gradio  # noqa: F401
    except ImportError:
        sys.exit('error: the web demo needs Gradio: pip install -r '
                 'requirements/demo.txt (or bash tools/install.sh --demo)')
    if args.examples:
        missing = [p for p in args.examples if not osp.isfile(p)]
        if missing:
            sys.exit(f'error: example images not found: {missing}')
        examples = [DemoExample(path) for path in args.examples]
    else:
        examples = shapesworld_examples(args.data_root)
    try:
        demo = PSALMWebDemo(args.config, checkpoint, device=args.device,
                            strict_tasks=not args.any_task)
    except FileNotFoundError as error:
        sys.exit(f'error: {error}')
    app = build_app(demo, examples)
    allowed = sorted({osp.dirname(osp.abspath(e.image)) for e in examples})
    app.queue().launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        ssr_mode=False,
        allowed_paths=allowed,
        footer_links=[])


if __name__ == '__main__':
    main()
