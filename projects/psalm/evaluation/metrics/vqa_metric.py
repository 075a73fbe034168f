# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Exact-match and VQA accuracy of generated answers."""
from typing import Dict, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from ..functional.vqa import exact_match, vqa_accuracy
from .utils import get_field, log_metrics_table, sample_name


@METRICS.register_module()
class VQAMetric(BaseMetric):
    """Exact match and VQA accuracy of text predictions.

    Data-sample fields read:

    * ``pred_text``: the generated answer (str);
    * ``gt_answers``: one reference answer (str) or the human answers of the
      question (a sequence of str, 10 in VQA v2).

    Answers are normalised as in the official VQA evaluation. ``exact_match``
    is 1 when the prediction equals the answer (any of the answers for a
    list). ``vqa_acc`` is the VQA accuracy (``min(#humans / 3, 1)`` averaged
    over the leave-one-out subsets) for a list, and the exact match for a
    single answer.

    Results (in %): ``exact_match``, ``vqa_acc``; plus ``num_samples``.

    Args:
        collect_device (str): Device used to collect results across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``.
    """
    default_prefix: Optional[str] = 'vqa'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score every answer.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Data samples with predictions.

        Raises:
            TypeError: If ``pred_text`` is not a str or ``gt_answers`` is
                neither a str nor a sequence of str.
        """
        for data_sample in data_samples:
            prediction = get_field(data_sample, 'pred_text')
            answers = get_field(data_sample, 'gt_answers')
            if not isinstance(prediction, str):
                raise TypeError(f'{sample_name(data_sample)}: pred_text must '
                                f'be a str, but got {type(prediction)}.')
            if isinstance(answers, str):
                match = exact_match(prediction, answers)
                self.results.append((match, match))
                continue
            if not all(isinstance(a, str) for a in answers):
                raise TypeError(f'{sample_name(data_sample)}: gt_answers '
                                'must be a str or a sequence of str.')
            try:
                accuracy = vqa_accuracy(prediction, answers)
            except ValueError as error:
                raise ValueError(f'{sample_name(data_sample)}: {error}') \
                    from error
            self.results.append((exact_match(prediction, answers), accuracy))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Average the per-question scores.

        Args:
            results (list): ``(exact_match, vqa_acc)`` per question.

        Returns:
            dict[str, float]: ``exact_match``, ``vqa_acc`` (in %) and
            ``num_samples``.

        Raises:
            ValueError: If no question was processed.
        """
        if not results:
            raise ValueError('No question was processed; nothing to evaluate.')
        # shape (num_samples, 2)
        scores = np.asarray(results, dtype=np.float64)
        metrics = {
            'exact_match': 100 * float(scores[:, 0].mean()),
            'vqa_acc': 100 * float(scores[:, 1].mean()),
            'num_samples': float(len(scores))
        }
        log_metrics_table('VQA results:', metrics)
        return metrics
