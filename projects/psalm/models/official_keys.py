# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Key mapping between the released PSALM checkpoint and this project.

Pure functions (no registry, no model): :func:`official_to_mmpsalm` renames
and reshapes the released state dict (``model.vision_tower.*``,
``model.mm_projector.*``, the transformers-4.36 Phi with a fused
``query_key_value``, ``seg_query``, the four 2048 -> 256 projections,
``pixel_decoder.*``, ``predictor.*``) into the state dict of
:class:`PSALM` built with ``configs/_base_/models/psalm_official.py``;
:func:`mmpsalm_to_official` is its exact inverse;
:func:`official_projector_to_mmpsalm` converts the stage-1 projector alone
(``mm_projector.bin``, ``model.mm_projector.*``).

Tensor transforms:

* Swin ``downsample.reduction.weight`` / ``downsample.norm.*``: the official
  PatchMerging concatenates the 2x2 neighbours as (0,0), (1,0), (0,1), (1,1)
  blocks of C channels; mmcv's PatchMerging uses ``nn.Unfold`` (channel
  major, kernel positions (0,0), (0,1), (1,0), (1,1) inner) -- the same
  re-ordering as mmdet's ``swinv1_to_mmdet`` converter.
* Phi ``self_attn.query_key_value`` ``[3 * H * d, C]``: rows are head major,
  ``(H, 3, d)``; split into ``q_proj``/``k_proj``/``v_proj`` ``[H * d, C]``.

The released model holds two tables this project does not build
(``predictor.query_feat.weight`` and ``predictor.SEG_query_embed.weight``,
never used by the forward pass): they are dropped (and reported), and
:func:`mmpsalm_to_official` writes them back as zeros only when asked
(``fill_unused=True``).
"""
import re
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['official_to_mmpsalm', 'mmpsalm_to_official',
           'official_projector_to_mmpsalm', 'OFFICIAL_UNUSED_KEYS',
           'OFFICIAL_PROJECTOR_PREFIX', 'split_qkv', 'merge_qkv']

#: released keys that no part of the forward pass reads
OFFICIAL_UNUSED_KEYS = ('predictor.query_feat.weight',
                        'predictor.SEG_query_embed.weight')

#: prefix of the projector keys, alone in the stage-1 ``mm_projector.bin``
OFFICIAL_PROJECTOR_PREFIX = 'model.mm_projector.'

WB = ('weight', 'bias')
BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
MHA = ('in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias')
MSDA = tuple(f'{m}.{p}' for m in ('sampling_offsets', 'attention_weights',
                                  'value_proj', 'output_proj') for p in WB)

_O_SWIN, _M_SWIN = 'model.vision_tower.', 'backbone.'
_O_BLK, _M_BLK = _O_SWIN + 'layers.{s}.blocks.{b}.', _M_SWIN + \
    'stages.{s}.blocks.{b}.'
_O_PD, _M_PD = 'pixel_decoder.', 'mask_generator.pixel_decoder.'
_O_ENC, _M_ENC = _O_PD + 'transformer.encoder.layers.{l}.', \
    _M_PD + 'encoder.layers.{l}.'
_M_DEC = 'mask_generator.transformer_decoder.layers.{l}.'
_O_PHI, _M_PHI = 'model.layers.{l}.', 'language_model.llm.model.layers.{l}.'

# (group, official template, mm template, params, transform); ``{p}`` runs
# over ``params``; every rule of a group has the same index placeholders
_RULES: List[Tuple[str, str, str, tuple, Optional[str]]] = [
    # --- Swin-B vision encoder -> mmdet SwinTransformer
    ('patch_embed', _O_SWIN + 'patch_embed.proj.{p}',
     _M_SWIN + 'patch_embed.projection.{p}', WB, None),
    ('patch_embed', _O_SWIN + 'patch_embed.norm.{p}',
     _M_SWIN + 'patch_embed.norm.{p}', WB, None),
    ('swin_block', _O_BLK + 'norm1.{p}', _M_BLK + 'norm1.{p}', WB, None),
    ('swin_block', _O_BLK + 'attn.relative_position_bias_table',
     _M_BLK + 'attn.w_msa.relative_position_bias_table', (), None),
    ('swin_block', _O_BLK + 'attn.relative_position_index',
     _M_BLK + 'attn.w_msa.relative_position_index', (), None),
    ('swin_block', _O_BLK + 'attn.qkv.{p}', _M_BLK + 'attn.w_msa.qkv.{p}',
     WB, None),
    ('swin_block', _O_BLK + 'attn.proj.{p}', _M_BLK + 'attn.w_msa.proj.{p}',
     WB, None),
    ('swin_block', _O_BLK + 'norm2.{p}', _M_BLK + 'norm2.{p}', WB, None),
    ('swin_block', _O_BLK + 'mlp.fc1.{p}', _M_BLK + 'ffn.layers.0.0.{p}',
     WB, None),
    ('swin_block', _O_BLK + 'mlp.fc2.{p}', _M_BLK + 'ffn.layers.1.{p}',
     WB, None),
    ('swin_down', _O_SWIN + 'layers.{s}.downsample.reduction.weight',
     _M_SWIN + 'stages.{s}.downsample.reduction.weight', (), 'reduction'),
    ('swin_down', _O_SWIN + 'layers.{s}.downsample.norm.{p}',
     _M_SWIN + 'stages.{s}.downsample.norm.{p}', WB, 'merge_norm'),
    ('swin_norm', _O_SWIN + 'norm{i}.{p}', _M_SWIN + 'norm{i}.{p}', WB, None),
    # --- ResNetSwin projector (identical sub-names)
    ('projector', 'model.mm_projector.layer1.0.conv1.weight',
     'projector.layer1.0.conv1.weight', (), None),
    ('projector', 'model.mm_projector.layer1.0.bn1.{p}',
     'projector.layer1.0.bn1.{p}', BN, None),
    ('projector', 'model.mm_projector.layer1.0.conv2.weight',
     'projector.layer1.0.conv2.weight', (), None),
    ('projector', 'model.mm_projector.layer1.0.bn2.{p}',
     'projector.layer1.0.bn2.{p}', BN, None),
    ('projector', 'model.mm_projector.layer1.0.downsample.0.weight',
     'projector.layer1.0.downsample.0.weight', (), None),
    ('projector', 'model.mm_projector.layer1.0.downsample.1.{p}',
     'projector.layer1.0.downsample.1.{p}', BN, None),
    ('projector', 'model.mm_projector.fc.{p}', 'projector.fc.{p}', WB, None),
    # --- Phi-1.5 (transformers 4.36 layout -> transformers 5 PhiForCausalLM)
    ('llm', 'model.embed_tokens.weight',
     'language_model.llm.model.embed_tokens.weight', (), None),
    ('llm', 'model.final_layernorm.{p}',
     'language_model.llm.model.final_layernorm.{p}', WB, None),
    ('llm', 'lm_head.weight', 'language_model.llm.lm_head.weight', (), None),
    ('phi_layer', _O_PHI + 'self_attn.query_key_value.{p}',
     _M_PHI + 'self_attn.{x}_proj.{p}', WB, 'qkv'),
    ('phi_layer', _O_PHI + 'self_attn.dense.{p}',
     _M_PHI + 'self_attn.dense.{p}',
     WB, None),
    ('phi_layer', _O_PHI + 'mlp.fc1.{p}', _M_PHI + 'mlp.fc1.{p}', WB, None),
    ('phi_layer', _O_PHI + 'mlp.fc2.{p}', _M_PHI + 'mlp.fc2.{p}', WB, None),
    ('phi_layer', _O_PHI + 'input_layernorm.{p}',
     _M_PHI + 'input_layernorm.{p}', WB, None),
    # --- mask tokens and the LLM -> 256 projections
    ('heads', 'seg_query', 'mask_tokens', (), None),
    ('heads', 'seg_query_projector.{p}',
     'condition_encoder.query_projector.{p}',
     WB, None),
    ('heads', 'class_name_projector.{p}',
     'condition_encoder.projectors.category.{p}', WB, None),
    ('heads', 'SEG_token_projector.{p}',
     'condition_encoder.projectors.sentence.{p}', WB, None),
    ('heads', 'region_projector.{p}',
     'condition_encoder.projectors.visual.{p}',
     WB, None),
    # --- pixel decoder -> PSALMPixelDecoder (mmdet MSDeformAttnPixelDecoder)
    ('pd_input', _O_PD + 'input_proj.{i}.0.{p}',
     _M_PD + 'input_convs.{i}.conv.{p}',
     WB, None),
    ('pd_input', _O_PD + 'input_proj.{i}.1.{p}',
     _M_PD + 'input_convs.{i}.gn.{p}',
     WB, None),
    ('pixel_decoder', _O_PD + 'transformer.level_embed',
     _M_PD + 'level_encoding.weight', (), None),
    ('pixel_decoder', _O_PD + 'mask_features.{p}', _M_PD + 'mask_feature.{p}',
     WB, None),
    ('pixel_decoder', _O_PD + 'adapter_1.0.{p}',
     _M_PD + 'lateral_convs.0.conv.{p}',
     WB, None),
    ('pixel_decoder', _O_PD + 'adapter_1.1.{p}',
     _M_PD + 'lateral_convs.0.gn.{p}',
     WB, None),
    ('pixel_decoder', _O_PD + 'layer_1.0.{p}',
     _M_PD + 'output_convs.0.conv.{p}',
     WB, None),
    ('pixel_decoder', _O_PD + 'layer_1.1.{p}', _M_PD + 'output_convs.0.gn.{p}',
     WB, None),
    ('pd_encoder', _O_ENC + 'self_attn.{p}', _M_ENC + 'self_attn.{p}', MSDA,
     None),
    ('pd_encoder', _O_ENC + 'norm1.{p}', _M_ENC + 'norms.0.{p}', WB, None),
    ('pd_encoder', _O_ENC + 'norm2.{p}', _M_ENC + 'norms.1.{p}', WB, None),
    ('pd_encoder', _O_ENC + 'linear1.{p}', _M_ENC + 'ffn.layers.0.0.{p}', WB,
     None),
    ('pd_encoder', _O_ENC + 'linear2.{p}', _M_ENC + 'ffn.layers.1.{p}', WB,
     None),
    # --- transformer decoder + heads -> MaskGenerator
    ('decoder_layer', 'predictor.transformer_cross_attention_layers.{l}.'
     'multihead_attn.{p}', _M_DEC + 'cross_attn.attn.{p}', MHA, None),
    ('decoder_layer', 'predictor.transformer_cross_attention_layers.{l}.'
     'norm.{p}', _M_DEC + 'norms.0.{p}', WB, None),
    ('decoder_layer', 'predictor.transformer_self_attention_layers.{l}.'
     'self_attn.{p}', _M_DEC + 'self_attn.attn.{p}', MHA, None),
    ('decoder_layer', 'predictor.transformer_self_attention_layers.{l}.'
     'norm.{p}', _M_DEC + 'norms.1.{p}', WB, None),
    ('decoder_layer', 'predictor.transformer_ffn_layers.{l}.linear1.{p}',
     _M_DEC + 'ffn.layers.0.0.{p}', WB, None),
    ('decoder_layer', 'predictor.transformer_ffn_layers.{l}.linear2.{p}',
     _M_DEC + 'ffn.layers.1.{p}', WB, None),
    ('decoder_layer', 'predictor.transformer_ffn_layers.{l}.norm.{p}',
     _M_DEC + 'norms.2.{p}', WB, None),
    ('decoder', 'predictor.decoder_norm.{p}',
     'mask_generator.transformer_decoder.post_norm.{p}', WB, None),
    ('decoder', 'predictor.query_embed.weight',
     'mask_generator.query_embed.weight', (), None),
    ('decoder', 'predictor.level_embed.weight',
     'mask_generator.level_embed.weight', (), None),
]
for _j, _k in enumerate((0, 2, 4)):
    _RULES.append(('decoder', f'predictor.mask_embed.layers.{_j}.{{p}}',
                   f'mask_generator.mask_embed.{_k}.{{p}}', WB, None))
for _off, _mm in (('CLASS', 'category'), ('SEG', 'sentence'),
                  ('REGION', 'visual')):
    for _j, _k in enumerate((0, 2)):
        _RULES.append(('decoder', f'predictor.{_off}_proj.layers.{_j}.{{p}}',
                       f'mask_generator.cond_mlps.{_mm}.{_k}.{{p}}', WB, None))

_INDEX = ('s', 'b', 'l', 'i')


def _compile(template: str, params: tuple) -> 're.Pattern':
    parts = re.split(r'\{(\w+)\}', template)
    out = []
    for n, part in enumerate(parts):
        if n % 2 == 0:
            out.append(re.escape(part))
        elif part in _INDEX:
            out.append(rf'(?P<{part}>\d+)')
        elif part == 'p':
            out.append('(?P<p>' + '|'.join(re.escape(p) for p in params) + ')')
        elif part == 'x':
            out.append('(?P<x>[qkv])')
        else:
            raise ValueError(f'unknown placeholder {part!r}')
    return re.compile(''.join(out) + r'\Z')


def _indices(template: str) -> Tuple[str, ...]:
    return tuple(n for n in re.findall(r'\{(\w+)\}', template) if n in _INDEX)


_COMPILED = [(rule, _compile(rule[1], rule[3]), _compile(rule[2], rule[3]))
             for rule in _RULES]


# ----------------------------------------------------------------------
# tensor transforms
# ----------------------------------------------------------------------
def split_qkv(fused: Tensor, num_heads: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Split a fused Phi ``query_key_value`` weight ``[3 * H * d, C]`` or bias
    ``[3 * H * d]`` whose rows are ordered ``(H, 3, d)`` into q, k, v."""
    rows = fused.shape[0]
    if rows % (3 * num_heads):
        raise ValueError(f'query_key_value has {rows} rows, not a multiple of '
                         f'3 x num_heads={num_heads}')
    head_dim = rows // (3 * num_heads)
    grouped = fused.reshape(num_heads, 3, head_dim, *fused.shape[1:])
    return tuple(grouped[:, j].reshape(num_heads * head_dim, *fused.shape[1:])
                 for j in range(3))


def merge_qkv(q: Tensor, k: Tensor, v: Tensor, num_heads: int) -> Tensor:
    """Inverse of :func:`split_qkv`."""
    head_dim = q.shape[0] // num_heads
    rest = q.shape[1:]
    return torch.stack([t.reshape(num_heads, head_dim, *rest)
                        for t in (q, k, v)], dim=1).reshape(
                            3 * num_heads * head_dim, *rest)


_ORDER = [0, 2, 1, 3]  # official (0,0),(1,0),(0,1),(1,1) <-> unfold order


def _reduction_to_mm(w: Tensor) -> Tensor:
    out_c, in_c = w.shape
    w = w.reshape(out_c, 4, in_c // 4)[:, _ORDER, :]
    return w.transpose(1, 2).reshape(out_c, in_c)


def _reduction_to_official(w: Tensor) -> Tensor:
    out_c, in_c = w.shape
    w = w.reshape(out_c, in_c // 4, 4).transpose(1, 2)
    return w[:, _ORDER, :].reshape(out_c, in_c)


def _norm_to_mm(w: Tensor) -> Tensor:
    in_c = w.shape[0]
    return w.reshape(4, in_c // 4)[_ORDER, :].transpose(0, 1).reshape(in_c)


def _norm_to_official(w: Tensor) -> Tensor:
    in_c = w.shape[0]
    return w.reshape(in_c // 4, 4).transpose(0, 1)[_ORDER, :].reshape(in_c)


_TO_MM = dict(reduction=_reduction_to_mm, merge_norm=_norm_to_mm)
_TO_OFFICIAL = dict(reduction=_reduction_to_official,
                    merge_norm=_norm_to_official)


# ----------------------------------------------------------------------
# engine
# ----------------------------------------------------------------------
def _expected(rules: list, side: int, groups: Dict[str, str]) -> List[str]:
    keys = []
    for rule in rules:
        template, params = rule[side], rule[3] or (None, )
        xs = ('q', 'k', 'v') if '{x}' in template else (None, )
        for p in params:
            for x in xs:
                fields = dict(groups)
                if p is not None:
                    fields['p'] = p
                if x is not None:
                    fields['x'] = x
                keys.append(template.format(**fields))
    return keys


def _gaps(instances: set) -> List[str]:
    """Index tuples must run 0..n-1 at every level (no missing layer)."""
    gaps = []
    instances = sorted(instances)
    depth = len(instances[0]) if instances else 0
    for level in range(depth):
        by_prefix = defaultdict(set)
        for inst in instances:
            by_prefix[inst[:level]].add(inst[level])
        for prefix, values in by_prefix.items():
            for v in range(max(values) + 1):
                if v not in values:
                    gaps.append(str(prefix + (v, )))
    return gaps


def _convert(state_dict: Dict[str, Tensor], to_mm: bool, num_heads: int,
             strict: bool, fill_unused: bool = False,
             return_report: bool = False):
    src, dst = (1, 2) if to_mm else (2, 1)
    out = OrderedDict()
    unexpected, dropped = [], []
    present = defaultdict(set)  # (group, indices) -> src keys seen
    qkv_parts = defaultdict(dict)
    for key, value in state_dict.items():
        match = None
        for rule, o_re, m_re in _COMPILED:
            found = (o_re if to_mm else m_re).match(key)
            if found:
                match = rule, found.groupdict()
                break
        if match is None:
            if to_mm and key in OFFICIAL_UNUSED_KEYS:
                dropped.append(key)
            else:
                unexpected.append(key)
            continue
        rule, groups = match
        group, transform = rule[0], rule[4]
        index = tuple((n, groups[n]) for n in _indices(rule[1]))
        present[(group, index)].add(key)
        if transform == 'qkv':
            if to_mm:
                for x, part in zip('qkv', split_qkv(value, num_heads)):
                    out[rule[dst].format(**groups, x=x)] = part
            else:
                fields = {n: v for n, v in groups.items() if n != 'x'}
                parts = qkv_parts[rule[dst].format(**fields)]
                parts[groups['x']] = value
                if len(parts) == 3:
                    out[rule[dst].format(**fields)] = merge_qkv(
                        parts['q'], parts['k'], parts['v'], num_heads)
            continue
        if transform is not None:
            value = (_TO_MM if to_mm else _TO_OFFICIAL)[transform](value)
        out[rule[dst].format(**groups)] = value

    # missing: incomplete groups, index gaps and absent singleton groups
    rules_by_group = defaultdict(list)
    for rule in _RULES:
        rules_by_group[rule[0]].append(rule)
    missing = []
    for group, rules in rules_by_group.items():
        names = _indices(rules[0][1])
        instances = {idx for (g, idx) in present if g == group}
        if not names and not instances:
            instances = {()}
        for index in instances:
            expected = _expected(rules, src, dict(index))
            missing += [k for k in expected
                        if k not in present.get((group, index), ())]
        missing += [f'{group} index {gap}' for gap in
                    _gaps({tuple(int(v) for _, v in idx)
                           for idx in instances if idx})]
    if (missing or unexpected) and strict:
        lines = []
        if missing:
            lines.append(f'missing keys ({len(missing)}): {missing}')
        if unexpected:
            lines.append(f'unexpected keys ({len(unexpected)}): {unexpected}')
        side = 'official' if to_mm else 'mmpsalm'
        raise KeyError(f'the {side} state dict does not have the expected '
                       'layout; ' + '; '.join(lines) +
                       ' (pass strict=False to convert what is known)')
    if fill_unused and not to_mm and 'predictor.query_embed.weight' in out:
        ref = out['predictor.query_embed.weight']
        n, c = ref.shape
        out['predictor.query_feat.weight'] = ref.new_zeros(n, c)
        out['predictor.SEG_query_embed.weight'] = ref.new_zeros(n + 1, c)
    if return_report:
        return out, dict(dropped=dropped, unexpected=unexpected,
                         missing=missing)
    return out


def official_to_mmpsalm(state_dict: Dict[str, Tensor],
                        num_heads: int = 32,
                        strict: bool = True,
                        return_report: bool = False):
    """Convert the released PSALM state dict to this project's layout.

    Args:
        state_dict (dict): Official keys (``model.vision_tower.*``, ...).
        num_heads (int): Phi attention heads (for the fused-QKV split).
        strict (bool): Raise a ``KeyError`` listing unknown keys and keys
            missing from the official layout. Otherwise skip them.
        return_report (bool): Also return ``dict(dropped=[...],
            unexpected=[...], missing=[...])``; ``dropped`` lists the two
            unused official tables (:data:`OFFICIAL_UNUSED_KEYS`).

    Returns:
        OrderedDict (or ``(OrderedDict, report)``): this project's keys.
    """
    return _convert(state_dict, True, num_heads, strict,
                    return_report=return_report)


def mmpsalm_to_official(state_dict: Dict[str, Tensor],
                        num_heads: int = 32,
                        strict: bool = True,
                        fill_unused: bool = False,
                        return_report: bool = False):
    """Exact inverse of :func:`official_to_mmpsalm`.

    Args:
        state_dict (dict): This project's keys (official-architecture model).
        num_heads (int): Phi attention heads (for the fused-QKV merge).
        strict (bool): Raise a ``KeyError`` listing unknown/missing keys.
        fill_unused (bool): Add the two unused official tables as zeros
            (``query_feat`` ``[N, C]``, ``SEG_query_embed`` ``[N + 1, C]``) so
            that the official code can load the result strictly.
        return_report (bool): Also return the report dict.
    """
    return _convert(state_dict, False, num_heads, strict,
                    fill_unused=fill_unused, return_report=return_report)


def official_projector_to_mmpsalm(state_dict: Dict[str, Tensor],
                                  strict: bool = True,
                                  return_report: bool = False):
    """Convert the stage-1 projector (``mm_projector.bin`` of
    ``EnmingZhang/PSALM_stage1``) to this project's ``projector.*`` keys.

    The file holds only the ``model.mm_projector.*`` keys of the
    ``ResNetSwin`` projector (20 with the BatchNorm buffers); the names are
    those of the full released checkpoint, so the same rules apply.

    Args:
        state_dict (dict): ``model.mm_projector.*`` tensors.
        strict (bool): Raise a ``KeyError`` naming keys of other modules and
            projector keys that are missing. Otherwise skip them.
        return_report (bool): Also return ``dict(unexpected=[...],
            missing=[...])``.

    Returns:
        OrderedDict (or ``(OrderedDict, report)``): ``projector.*`` keys.
    """
    out, report = _convert(state_dict, True, 32, strict=False,
                           return_report=True)
    unexpected = [k for k in state_dict
                  if not k.startswith(OFFICIAL_PROJECTOR_PREFIX)
                  or k in report['unexpected']]
    missing = [k for k in report['missing']
               if k.startswith(OFFICIAL_PROJECTOR_PREFIX)]
    if (missing or unexpected) and strict:
        raise KeyError(
            'not a stage-1 projector state dict (model.mm_projector.*): '
            f'missing keys ({len(missing)}): {missing}; keys of other '
            f'modules or unknown ({len(unexpected)}): {unexpected} (pass '
            'strict=False to convert what is known)')
    out = OrderedDict((k, v) for k, v in out.items()
                      if k.startswith('projector.'))
    if return_report:
        return out, dict(unexpected=unexpected, missing=missing)
    return out
