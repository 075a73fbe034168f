# Visual question answering: the model generates the answer of every
# question (greedy, `test_cfg.max_new_tokens`); VQAMetric reports the exact
# match and the VQA accuracy (min(#humans / 3, 1), leave-one-out) with the
# official VQA answer normalisation.
# Annotation: a json list (or .jsonl) of {image, question, answer} or
# {image, question, answers} (the human answers), optional question_id,
# e.g. VQAv2 val questions joined with their annotations' answers, images
# of COCO val2014. Defaults: data/vqa/vqav2_val.json + data/coco/val2014/,
# with LLaVA-1.5's short-answer instruction.
dataset_type = 'VQADataset'
data_root = 'data/'
backend_args = None
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackPSALMInputs')
]
test_dataloader = dict(
    # one question per batch, as the official LLaVA evaluation
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='vqa/vqav2_val.json',
        data_prefix=dict(img_path='coco/val2014/'),
        question_suffix='\nAnswer the question using a single word or '
        'phrase.',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='VQAMetric')
test_cfg = dict(type='TestLoop')
