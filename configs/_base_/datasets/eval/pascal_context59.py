# PASCAL-Context-59 open-vocabulary semantic segmentation (paper Tab. 11,
# PC59 mIoU): the 5105 val images of PASCAL VOC 2010, prompted with the 59
# class names of `class_names/pascal_context59.txt`, task 'semantic'
# (`ov_semantic.py`); label 0 (the other classes) is ignored
# (reduce_zero_label).
# Layout (mmseg's, `tools/dataset_converters/pascal_context.py`):
# data/VOCdevkit/VOC2010/{JPEGImages, SegmentationClassContext,
# ImageSets/SegmentationContext/val.txt}.
_base_ = ['./ov_semantic.py']

dataset_type = 'PSALMPascalContext59Dataset'
data_root = 'data/VOCdevkit/VOC2010/'

test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        class_names='pascal_context59'))
