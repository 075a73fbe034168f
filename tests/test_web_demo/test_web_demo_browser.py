# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""End to end in a real browser: the web demo served by Gradio, driven by
Playwright in headless Chromium (Debian's ``chromium`` package), with a
briefly trained tiny PSALM on ShapesWorld (fixture ``shapesworld_model``).

The page is loaded with every request that does not go to the local server
blocked (the demo must work offline); the test uploads the ShapesWorld
image, submits a referring expression, then clicks a point on the image,
and checks for each that the returned overlay marks the intended object:

* the result json the page offers (the predicted mask, RLE) overlaps the
  target mask with IoU > 0.5;
* the overlay picture paints the target: the pixels it paints with the
  first mask colour (the 50% blend of the input with palette colour 0) lie
  inside the target (> 80%) and cover a part of it (> 15%; labels,
  outlines and the prompt marks are drawn over the rest).

A second click on the same object must not encode the image again. The
page is saved as a screenshot (``work_dirs/test_artifacts/web_demo.png``,
or ``$PSALM_TEST_ARTIFACTS/web_demo.png``).

Skipped, with the reason, when Gradio or Playwright is not installed or no
Chromium executable is found (``$PSALM_CHROMIUM``, else ``chromium``,
``chromium-browser``, ``google-chrome`` on ``PATH``).
"""
import io
import json
import os
import os.path as osp
import shutil
import socket
import time

import numpy as np
import pytest

pytest.importorskip('gradio', reason='the web demo needs Gradio '
                    '(pip install -r requirements/demo.txt)')
pytest.importorskip('playwright.sync_api', reason='the browser test needs '
                    'Playwright (pip install -r requirements/demo.txt)')


def _browser() -> str:
    path = os.environ.get('PSALM_CHROMIUM')
    if path:
        return path if osp.isfile(path) else ''
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        found = shutil.which(name)
        if found:
            return found
    return ''


BROWSER = _browser()
pytestmark = pytest.mark.skipif(
    not BROWSER,
    reason='no Chromium executable (apt-get install chromium, or set '
    'PSALM_CHROMIUM=/path/to/chrome)')

#: colour of the first mask of an overlay and its opacity
#: (projects/psalm/visualization/overlay.py: draw_masks)
ALPHA = 0.5
TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _artifact_dir(repo_root: str) -> str:
    path = os.environ.get('PSALM_TEST_ARTIFACTS') or osp.join(
        repo_root, 'work_dirs', 'test_artifacts')
    os.makedirs(path, exist_ok=True)
    return path


def first_mask_pixels(overlay: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Pixels an overlay paints with its first mask colour.

    Args:
        overlay (np.ndarray): ``(H, W, 3)`` uint8 RGB returned picture.
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB input.

    Returns:
        np.ndarray: ``(H, W)`` bool: changed pixels that equal the blend of
        the input with palette colour 0 (labels, outlines and prompt marks
        are solid colours, so they are left out).
    """
    from projects.psalm.visualization.browse import PALETTE
    image = image.astype(np.float32)
    blend = (1 - ALPHA) * image + ALPHA * np.float32(PALETTE[0])
    overlay = overlay.astype(np.float32)
    changed = np.abs(overlay - image).max(-1) > 12
    return changed & (np.abs(overlay - blend).max(-1) <= 6)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def check_marks(overlay: np.ndarray, image: np.ndarray, result: dict,
                target: np.ndarray, what: str) -> None:
    """The returned mask and the overlay mark ``target``."""
    import pycocotools.mask as mask_utils
    assert len(result['masks']) == 1, what
    predicted = mask_utils.decode(result['masks'][0]).astype(bool)
    assert iou(predicted, target) > 0.5, (
        f'{what}: the returned mask has IoU {iou(predicted, target):.2f} '
        'with the target')
    marked = first_mask_pixels(overlay, image)
    inside = (marked & target).sum()
    assert inside > 0.8 * marked.sum(), (
        f'{what}: {marked.sum() - inside} of the {marked.sum()} pixels the '
        'overlay paints are outside the target')
    assert inside > 0.15 * target.sum(), (
        f'{what}: the overlay paints {inside} of the {target.sum()} target '
        'pixels')


@pytest.fixture(scope='module')
def served_demo(shapesworld_model):
    """The web demo on a free local port: (url, PSALMWebDemo)."""
    from projects.psalm.apis.web_demo import PSALMWebDemo, build_app
    demo = PSALMWebDemo(shapesworld_model['config'],
                        shapesworld_model['checkpoint'], device='cpu')
    app = build_app(demo)  # no examples: the test uploads its image
    port = _free_port()
    app.queue().launch(
        server_name='127.0.0.1',
        server_port=port,
        prevent_thread_lock=True,
        share=False,
        ssr_mode=False,
        quiet=True,
        footer_links=[])
    yield f'http://127.0.0.1:{port}/', demo
    app.close()


def test_browser_referring_and_point_mark_the_target(
        served_demo, shapesworld_model, backbone_calls, repo_root, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright
    url, demo = served_demo
    image_path = shapesworld_model['image']
    targets = shapesworld_model['targets']
    # the referring expression names the first target; the click goes to
    # the last one (another object when the fixture gives several)
    text_target, point_target = targets[0], targets[-1]
    image = np.asarray(Image.open(image_path).convert('RGB'))
    calls = backbone_calls(demo.inferencer.model)
    external = []

    def local_only(route):
        if route.request.url.startswith(url.rstrip('/')):
            return route.continue_()
        external.append(route.request.url)
        return route.abort()

    start = time.perf_counter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=BROWSER, headless=True, args=['--no-sandbox'])
        try:
            page = browser.new_page(viewport=dict(width=1280, height=900))
            page.set_default_timeout(TIMEOUT_MS)
            page.route('**/*', local_only)
            page.goto(url, wait_until='load')

            def status() -> str:
                return page.inner_text('#psalm-status')

            def wait_status(*parts: str) -> str:
                page.wait_for_function(
                    'parts => parts.every(p => document.querySelector('
                    '"#psalm-status")?.innerText.includes(p))', arg=parts)
                return status()

            def overlay() -> np.ndarray:
                src = page.locator('#psalm-result img').get_attribute('src')
                body = page.request.get(src).body()
                return np.asarray(Image.open(io.BytesIO(body)).convert('RGB'))

            def result_json(number: int) -> dict:
                link = page.locator('#psalm-file a').first
                page.wait_for_function(
                    'name => document.querySelector("#psalm-file a")'
                    '?.href.endsWith(name)',
                    arg=f'psalm_result_{number}.json')
                return json.loads(page.request.get(
                    link.get_attribute('href')).body())

            # upload: the image is encoded once, here
            page.locator('#psalm-canvas input[type=file]').set_input_files(
                image_path)
            wait_status('ready', 'encoded')
            assert calls.count == 1
            page.get_by_text('Result details').click()  # the result json

            # a referring expression
            page.fill('#psalm-text textarea', text_target['text'])
            page.click('#psalm-run')
            wait_status('Run 1.', 'referring: 1 mask')
            check_marks(overlay(), image, result_json(1), text_target['mask'],
                        f'referring {text_target["text"]!r}')

            # a click on the image, where the picture shows pixel (x, y)
            canvas = page.locator('#psalm-canvas img')
            box = canvas.bounding_box()
            natural_w, natural_h = canvas.evaluate(
                'img => [img.naturalWidth, img.naturalHeight]')
            scale = min(box['width'] / natural_w, box['height'] / natural_h)
            left = box['x'] + (box['width'] - natural_w * scale) / 2
            top = box['y'] + (box['height'] - natural_h * scale) / 2

            def click(x: float, y: float) -> None:
                page.mouse.click(left + (x + 0.5) * scale,
                                 top + (y + 0.5) * scale)

            x, y = point_target['point']
            click(x, y)
            point_status = wait_status('Run 2.', 'interactive: 1 mask')
            assert 'image features reused' in point_status
            check_marks(overlay(), image, result_json(2),
                        point_target['mask'], f'point ({x}, {y})')

            # a second click on the same object: no new encoding
            ys, xs = np.nonzero(point_target['mask'])
            far = np.argmax((xs - x)**2 + (ys - y)**2)
            click((x + xs[far]) / 2, (y + ys[far]) / 2)
            wait_status('Run 3.', 'interactive: 1 mask')
            assert calls.count == 1, 'a click encoded the image again'
            assert demo.encode_count == 1

            shot = osp.join(_artifact_dir(repo_root), 'web_demo.png')
            page.screenshot(path=shot, full_page=True)
            shutil.copy(shot, tmp_path / 'web_demo.png')
        finally:
            browser.close()
    assert external == [], f'the page asked for external resources: {external}'
    print(f'browser session: {time.perf_counter() - start:.1f} s; '
          f'screenshot: {shot}')
