# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""OpenMMLab-style ``projects`` namespace holding the PSALM extension."""
