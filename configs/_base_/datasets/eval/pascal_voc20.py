# PASCAL VOC-20 open-vocabulary semantic segmentation (paper Tab. 11, PAS20
# mIoU): the 1449 VOC 2012 val images prompted with the 20 object classes
# of `class_names/voc20.txt`, task 'semantic' (`ov_semantic.py`); background
# (0) and the object boundaries (255) are ignored (mmseg's label map of the
# dataset: background -> 255, k -> k - 1).
# Layout (mmseg's): data/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass,
# ImageSets/Segmentation/val.txt}.
_base_ = ['./ov_semantic.py']

dataset_type = 'PSALMPascalVOC20Dataset'
data_root = 'data/VOCdevkit/VOC2012/'

test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        class_names='voc20'))
