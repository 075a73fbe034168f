# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Computed (not measured) peak GPU memory of the fine-tuning recipes.

Produces the memory table of ``docs/finetune.md``::

    python tests/test_finetune/memory_budget.py            # the table
    python tests/test_finetune/memory_budget.py --recount  # recount (~10 min)

Inputs:

* **parameters**: exact counts per part of the paper-size PSALM
  (``configs/_base_/models/psalm_swin-b_phi-1.5.py``), built on the meta
  device (no memory, no weights); LoRA adapters: ``r * (in + out)`` per
  adapted linear layer;
* **activations**: bytes of the tensors autograd keeps for the backward pass
  (``torch.autograd.graph.saved_tensors_hooks``, each storage once,
  parameters excluded), counted on CPU under bf16 autocast at 1024x1024 for
  one real COCO image with the real pipeline shapes: one full-width Phi-1.5
  decoder layer at two sequence lengths (the linear term per token; the s^2
  term of PyTorch's CPU attention kernel is dropped because GPU SDPA kernels
  keep O(s) statistics), with and without checkpointing and with a LoRA
  adapter, and the rest of the model (projector, condition encoder, mask
  generator, criterion) at full size for the panoptic (133 COCO classes,
  the longest prompt), referring and interactive tasks. bf16 copies of
  weights that autograd keeps (autocast casts) are counted once, not per
  image. The counts are stored in :data:`COUNTS` (``--recount`` redoes them).

Model of the peak, per GPU, ``B`` images of the worst task::

    weights    4 B x all parameters (fp32 master weights; + LoRA adapters)
    gradients  4 B x trainable parameters (fp32)
    AdamW      8 B x trainable parameters (m, v in fp32); / N with ZeRO-1
    LLM        checkpointed: 24 x (layer inputs) + the larger of one layer
               recomputed in the backward pass and, when the LLM trains,
               autocast's cache of its 24 layers' bf16 weights (held to the
               end of the forward pass)
               not checkpointed (frozen LLM: eval mode): 24 x layer
    rest       B x (projector + condition encoder + mask generator + loss)
    peak       1.1 x (weights + gradients + AdamW + activations) + 1 GiB
               (allocator fragmentation, CUDA context and workspaces); an
               upper bound: gradients grow while activations are freed

GiB = 2^30 bytes.
"""
import argparse
import os.path as osp
import sys
from collections import defaultdict
from typing import Callable, Dict, Optional

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
MODEL_CFG = 'configs/_base_/models/psalm_swin-b_phi-1.5.py'
GIB = 2**30
LLM_LAYERS = 24
LORA_RANK = 16
LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2')
TASKS = ('panoptic', 'referring', 'interactive')

# --recount output (torch 2.13 CPU, transformers 5.24, mmcv 2.1.0's PyTorch
# deformable attention, bf16 autocast): parameters per part; LLM bytes per
# token and decoder layer; bytes per 1024x1024 image of the rest; bf16
# weight copies kept by autograd (per layer / for the rest, not per image)
COUNTS = {
    'params': {
        'mask_tokens': 204800,
        'backbone': 86880376,
        'projector': 23072768,
        'language_model': 1414524928,
        'condition_encoder': 2098176,
        'mask_generator': 20372160,
        'lora_r16': 14155776
    },
    'llm_layer_weight_copies': 100663296,
    'llm_checkpoint_per_token': 8192,
    'llm_layer_per_token': 127112,
    'llm_layer_lora_per_token': 201032,
    'llm_tokens': {
        'panoptic': 818,
        'referring': 436,
        'interactive': 435
    },
    'rest_per_image': {
        'panoptic': 3181752814,
        'referring': 3165910283,
        'interactive': 3177201339
    },
    'rest_weight_copies': {
        'panoptic': 95700992,
        'referring': 95700992,
        'interactive': 95702528
    }
}

# recipe -> (trained parts, LLM checkpointed, LoRA)
RECIPES = {
    'full': (('projector', 'language_model', 'condition_encoder',
              'mask_generator', 'mask_tokens'), True, False),
    # a frozen, checkpointed LLM without dropout stays in train mode and
    # checkpoints (PSALM.train)
    'frozen LLM': (('projector', 'condition_encoder', 'mask_generator',
                    'mask_tokens'), True, False),
    'LoRA r=16': (('projector', 'condition_encoder', 'mask_generator',
                   'mask_tokens'), True, True),
}


def _model_cfg(num_layers: Optional[int] = None):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, MODEL_CFG))
    phi = dict(cfg.phi_1_5_config)
    if num_layers is not None:
        phi['num_hidden_layers'] = num_layers
    cfg.model.language_model.update(
        pretrained=None, config=phi,
        tokenizer=osp.join(REPO_ROOT, cfg.model.language_model.tokenizer))
    cfg.model.backbone.convert_weights = False
    return cfg.model


def _build(model_cfg):
    import projects.psalm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return MODELS.build(model_cfg)


def count_parameters() -> Dict[str, int]:
    """Parameters per part of the paper-size model (meta device)."""
    import torch

    # mmdet's Swin calls .item() on a linspace of drop-path rates, which
    # meta tensors cannot do: that one linspace is made on the CPU
    linspace = torch.linspace
    torch.linspace = lambda *a, **k: linspace(*a, **{'device': 'cpu', **k})
    try:
        with torch.device('meta'):
            model = _build(_model_cfg())
    finally:
        torch.linspace = linspace
    counts = defaultdict(int)
    for name, param in model.named_parameters():
        counts[name.split('.')[0]] += param.numel()
    lora = 0
    for name, module in model.language_model.llm.named_modules():
        if name.rsplit('.', 1)[-1] in LORA_TARGETS:
            lora += LORA_RANK * (module.in_features + module.out_features)
    counts['lora_r16'] = lora
    return dict(counts)


class SavedTensorCounter:
    """Bytes of the tensors autograd saves, by the module running."""

    def __init__(self, model, parts=()):
        import torch
        self.params = {p.untyped_storage().data_ptr()
                       for p in model.parameters()}
        self.param_shapes = {tuple(p.shape) for p in model.parameters()
                             if p.dim() >= 2}
        self.seen = set()
        self.bytes = defaultdict(int)
        self.copies = defaultdict(int)
        self.stack = ['other']
        self.handles = []
        for name in parts:
            module = model.get_submodule(name)
            self.handles.append(module.register_forward_pre_hook(
                lambda *_, n=name: self.stack.append(n)))
            self.handles.append(module.register_forward_hook(
                lambda *_: self.stack.pop() and None))
        self.hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda t: t)

    def _pack(self, tensor):
        import torch
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self.params or ptr in self.seen or ptr == 0:
            return tensor
        self.seen.add(ptr)
        part = self.stack[-1]
        if tensor.dtype == torch.bfloat16 and \
                tuple(tensor.shape) in self.param_shapes:
            self.copies[part] += storage.nbytes()  # autocast weight copy
        else:
            self.bytes[part] += storage.nbytes()
        return tensor

    def __enter__(self):
        self.hooks.__enter__()
        return self

    def __exit__(self, *args):
        self.hooks.__exit__(*args)
        for handle in self.handles:
            handle.remove()


def _autocast():
    import torch
    return torch.autocast('cpu', dtype=torch.bfloat16)


def count_llm_layer(length: int, lora: bool = False) -> Dict[str, int]:
    """Saved bytes of one full-width Phi-1.5 decoder layer (the second of
    two) over ``length`` tokens, its autocast weight copies, and the bytes
    per token of its output (what a checkpointed layer keeps: its input)."""
    import torch
    from transformers import PhiConfig
    from transformers.models.phi.modeling_phi import PhiModel
    cfg = _model_cfg()
    phi = dict(cfg.language_model.config, num_hidden_layers=2,
               vocab_size=16)
    model = PhiModel(PhiConfig(**phi, attn_implementation='sdpa')).train()
    if lora:
        from projects.psalm.models.lmm.lora import apply_lora
        apply_lora(model, dict(r=LORA_RANK, alpha=2 * LORA_RANK,
                               dropout=0.05,
                               target_modules=list(LORA_TARGETS)))
    embeds = torch.randn(1, length, phi['hidden_size'], requires_grad=True)
    mask = torch.ones(1, length, dtype=torch.long)
    with SavedTensorCounter(model, ('layers.0', 'layers.1')) as counter:
        with _autocast():
            out = model(inputs_embeds=embeds, attention_mask=mask)
    hidden = out.last_hidden_state
    hidden.float().sum().backward()
    # the residual stream (a checkpointed layer's saved input)
    stream = hidden.shape[-1] * hidden.element_size()
    return dict(bytes=int(counter.bytes['layers.1']),
                copies=int(counter.copies['layers.1']), stream=stream)


def _sample(task: str, image_size: int = 1024):
    """One real COCO image at ``image_size`` with its 3 largest masks and a
    prompt of ``task`` (panoptic: the 133 COCO panoptic class names)."""
    import json

    import mmcv
    import numpy as np
    import pycocotools.mask as mask_utils
    import torch
    from mmengine.structures import InstanceData

    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    root = osp.join(REPO_ROOT, 'tests', 'data', 'coco_panoptic_sample')
    with open(osp.join(root, 'panoptic_coco_detection_format.json')) as f:
        coco = json.load(f)
    image = mmcv.imread(osp.join(root, 'input_images', '000000439180.jpg'))
    image = mmcv.imrescale(image, (image_size, image_size))
    h, w = image.shape[:2]
    anns = sorted((a for a in coco['annotations']
                   if a['image_id'] == 439180 and not a['iscrowd']),
                  key=lambda a: -a['area'])[:3]
    masks = np.stack([
        mmcv.imresize(mask_utils.decode(a['segmentation']), (w, h),
                      interpolation='nearest') for a in anns
    ]).astype(np.uint8)
    names = [c['name'] for c in coco['categories']]
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), img_path='000000439180.jpg',
        scale_factor=(1.0, 1.0)))
    labels = torch.arange(len(masks))
    if task == 'panoptic':
        index = {c['id']: i for i, c in enumerate(coco['categories'])}
        labels = torch.tensor([index[a['category_id']] for a in anns])
        prompt = dict(task=task, class_names=names)
        sample.set_metainfo(dict(is_thing=[True] * len(names)))
    elif task == 'referring':
        masks, labels = masks[:1], labels[:1]
        prompt = dict(task=task, sentences=['the big horse on the left'])
    else:
        prompt = dict(task=task)
        sample.prompt_masks = torch.from_numpy(masks).bool()
    sample.set_metainfo(dict(prompt=prompt))
    sample.gt_instances = InstanceData(masks=BitmapMasks(masks, h, w),
                                       labels=labels)
    inputs = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    return dict(inputs=[inputs], data_samples=[sample])


def count_rest(task: str) -> Dict:
    """Saved bytes of one 1024x1024 image of ``task`` outside the LLM
    decoder layers (Swin-B frozen: nothing saved; its forward is replaced
    by random features of its output shapes to save time)."""
    import torch
    torch.manual_seed(0)
    model = _build(_model_cfg(num_layers=1)).train()
    chans = (128, 256, 512, 1024)

    def swin(inputs):
        b, _, h, w = inputs.shape
        return tuple(torch.randn(b, c, h // s, w // s)
                     for c, s in zip(chans, (4, 8, 16, 32)))

    model.backbone.forward = swin
    parts = ('projector', 'language_model', 'condition_encoder',
             'mask_generator', 'criterion')
    data = model.data_preprocessor(_sample(task), training=True)
    with SavedTensorCounter(model, parts) as counter:
        with _autocast():
            losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    with torch.no_grad():
        _, batch, _, _ = model._run_lmm(data['inputs'],
                                        data['data_samples'], task)
    tokens = int(batch['attention_mask'].sum())
    rest = {k: v for k, v in counter.bytes.items() if k != 'language_model'}
    copies = {k: v for k, v in counter.copies.items()
              if k != 'language_model'}
    return dict(tokens=tokens, bytes=rest, copies=copies)


def recount(log: Callable[[str], None] = print) -> dict:
    """Recount everything (CPU, about 10 minutes on one core)."""
    counts = dict(params=count_parameters())
    log(f'params: {counts["params"]}')
    per_token = {}
    for key, lora in (('plain', False), ('lora', True)):
        short, long = (count_llm_layer(n, lora) for n in (256, 512))
        # bytes = a * s + b * s^2: keep the linear term a
        quad = (long['bytes'] - 2 * short['bytes']) / (512**2 - 2 * 256**2)
        per_token[key] = (short['bytes'] - quad * 256**2) / 256
        if key == 'plain':
            counts['llm_layer_weight_copies'] = short['copies']
            counts['llm_checkpoint_per_token'] = short['stream']
        log(f'llm layer {key}: {short} / {long} -> {per_token[key]:.0f} B '
            'per token')
    counts['llm_layer_per_token'] = int(round(per_token['plain']))
    counts['llm_layer_lora_per_token'] = int(round(per_token['lora']))
    counts['llm_tokens'], counts['rest_per_image'] = {}, {}
    counts['rest_weight_copies'] = {}
    for task in TASKS:
        result = count_rest(task)
        log(f'{task}: {result}')
        counts['llm_tokens'][task] = result['tokens']
        counts['rest_per_image'][task] = int(sum(result['bytes'].values()))
        counts['rest_weight_copies'][task] = int(
            sum(result['copies'].values()))
    return counts


def estimate(counts: dict, recipe: str, images: int, task: str = 'panoptic',
             zero_gpus: int = 1, zero_stage: int = 0) -> Dict[str, float]:
    """The peak-memory terms in GiB (see the module doc)."""
    parts, checkpointed, lora = RECIPES[recipe]
    params = counts['params']
    total = sum(v for k, v in params.items() if k != 'lora_r16')
    trained = sum(params.get(p, 0) for p in parts)
    if lora:
        total += params['lora_r16']
        trained += params['lora_r16']
    shard = zero_gpus if zero_stage >= 1 else 1
    weights = 4 * total
    grads = 4 * trained / (zero_gpus if zero_stage >= 2 else 1)
    adam = 8 * trained / shard
    tokens = counts['llm_tokens'][task] * images
    layer = counts['llm_layer_lora_per_token' if lora else
                   'llm_layer_per_token'] * tokens
    copies = counts['llm_layer_weight_copies']
    if checkpointed:
        # autocast caches the bf16 casts of trainable weights until the end
        # of the forward pass; the backward recomputes one layer at a time
        cache = LLM_LAYERS * copies if 'language_model' in parts else 0
        llm = LLM_LAYERS * counts['llm_checkpoint_per_token'] * tokens + \
            max(layer + copies, cache)
    else:
        llm = LLM_LAYERS * (layer + copies)
    rest = counts['rest_per_image'][task] * images + \
        counts['rest_weight_copies'][task]
    acts = llm + rest
    peak = 1.1 * (weights + grads + adam + acts) + GIB
    return {k: v / GIB for k, v in dict(
        weights=weights, grads=grads, adam=adam, llm=llm, rest=rest,
        peak=peak).items()}


def _tier(peak: float) -> str:
    """The smallest of the 24 / 40 / 80 GB GPUs the peak fits (1 GiB
    spare)."""
    for size in (24, 40, 80):
        if peak <= size - 1:
            return f'{size} GB'
    return '> 80 GB'


def render_table(counts: dict) -> str:
    """The markdown table of docs/finetune.md."""
    rows = [('full', 1, 0), ('full', 8, 1), ('full', 8, 2),
            ('frozen LLM', 1, 0), ('LoRA r=16', 1, 0)]
    names = {0: '1 GPU / DDP', 1: 'ZeRO-1, 8 GPUs', 2: 'ZeRO-2, 8 GPUs'}
    lines = [
        '| recipe | optimizer states | weights + grads + AdamW | '
        'activations, 1 img | **peak, 1 img/GPU** | activations, 4 img | '
        '**peak, 4 img/GPU** | GPU (1 / 4 img) |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for recipe, gpus, stage in rows:
        one = estimate(counts, recipe, 1, zero_gpus=gpus, zero_stage=stage)
        four = estimate(counts, recipe, 4, zero_gpus=gpus, zero_stage=stage)
        static = one['weights'] + one['grads'] + one['adam']
        lines.append(
            f'| {recipe} | {names[stage]} | {static:.1f} | '
            f'{one["llm"] + one["rest"]:.1f} | **{one["peak"]:.1f}** | '
            f'{four["llm"] + four["rest"]:.1f} | **{four["peak"]:.1f}** | '
            f'{_tier(one["peak"])} / {_tier(four["peak"])} |')
    return '\n'.join(lines)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--recount', action='store_true',
                        help='recount parameters and activations on CPU')
    args = parser.parse_args(argv)
    counts = recount() if args.recount else COUNTS
    if args.recount:
        print(f'COUNTS = {counts!r}')
    table = render_table(counts)
    print(table)
    return table


if __name__ == '__main__':
    sys.path.insert(0, REPO_ROOT)
    main()
